// The chat demo: pick a room, see its last messages, send, edit and delete them, and watch every
// other tab on the same room change live; see the room's announcements live; narrow both with
// filters the server applies. Its parts: api.js (the GraphQL client), room.js (a room's state and
// the subscriptions that keep it current), filters.js (the filter form's values as filters),
// view.js (the DOM), announce.js (the dev aid that sends a test announcement).
import { readConfig, wsOptions } from '../config.js';
import { publishCommand, sendAnnouncement } from './announce.js';
import { createAPI } from './api.js';
import { describe, narrowing } from './filters.js';
import { Room } from './room.js';
import { MessageList, showAnnouncements, showError, showStatus } from './view.js';

const $ = (id) => document.getElementById(id);
const els = {
  status: $('status'),
  roomForm: $('room-form'),
  room: $('room'),
  author: $('author'),
  filterForm: $('filter-form'),
  filterAuthors: $('filter-authors'),
  filterText: $('filter-text'),
  filterPriority: $('filter-priority'),
  filterClear: $('filter-clear'),
  filterSummary: $('filter-summary'),
  filterError: $('filter-error'),
  announcements: $('announcements'),
  publishCommand: $('publish-command'),
  announceForm: $('announce-form'),
  announceText: $('announce-text'),
  announcePriority: $('announce-priority'),
  announceSend: $('announce-send'),
  announceStatus: $('announce-status'),
  title: $('room-title'),
  messages: $('messages'),
  sendForm: $('send-form'),
  message: $('message'),
  send: $('send'),
  error: $('error'),
};

let room = null;
const fail = (err) => {
  showError(els.error, err);
  return false;
};

const config = readConfig();
const api = createAPI({
  ...config,
  wsOptions,
  onStatus: (state) => showStatus(els.status, state),
  onReconnected: () => room?.reload().catch(fail),
});

// The filters applied (the form's values when last applied), and the server's refusals of the
// room's subscriptions (feed → message), shown beside the filters.
let filterValues = {};
const refusals = new Map();
function showRefusals() {
  const feeds = new Map(); // message → feeds
  for (const [feed, message] of refusals) feeds.set(message, [...(feeds.get(message) ?? []), feed]);
  const text = [...feeds].map(([message, names]) => `${message} (${names.sort().join(', ')})`).join('; ');
  showError(els.filterError, text ? new Error(`The server refused the subscription: ${text}`) : null);
}

const list = new MessageList(els.messages, {
  onEdit: (id, text) =>
    room
      .edit(id, text)
      .then((m) => {
        room.upsert(m);
        showError(els.error, null);
        return true;
      })
      .catch(fail),
  onDelete: (id) =>
    room
      .delete(id)
      .then(() => {
        room.remove(id);
        showError(els.error, null);
      })
      .catch(fail),
});

// openRoom closes the current room and opens another; the room is also kept in the URL's hash.
async function openRoom(id) {
  room?.close();
  refusals.clear();
  showRefusals();
  room = new Room(api, id, narrowing(filterValues));
  const r = room;
  const render = () => r === room && list.show(r);
  r.on('change', render)
    .on('remove', render)
    .on('announcement', () => r === room && showAnnouncements(els.announcements, r))
    .on('error', (err) => {
      if (r !== room) return;
      if (!err.refused) return fail(new Error(`${err.feed}: ${err.message}`));
      refusals.set(err.feed, err.message);
      showRefusals();
    });
  els.title.textContent = `Room ${id}`;
  els.room.value = id;
  els.publishCommand.textContent = publishCommand(id);
  document.title = `${id} · lambdaws chat`;
  if (window.location.hash !== `#${encodeURIComponent(id)}`) history.replaceState(null, '', `#${encodeURIComponent(id)}`);
  list.show(r);
  showAnnouncements(els.announcements, r);
  try {
    await r.open();
    showError(els.error, null);
  } catch (err) {
    fail(err);
  }
}

// applyFilters narrows the room with the form's values: the room completes each subscription whose
// filter changed and subscribes again with the new one.
async function applyFilters() {
  filterValues = { authors: els.filterAuthors.value, contains: els.filterText.value, minPriority: els.filterPriority.value };
  els.filterSummary.textContent = describe(filterValues);
  refusals.clear();
  showRefusals();
  try {
    await room.setFilters(narrowing(filterValues));
  } catch (err) {
    fail(err);
  }
}

els.roomForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = els.room.value.trim();
  if (id && id !== room?.id) openRoom(id);
});

els.filterForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  applyFilters();
});
els.filterClear.addEventListener('click', () => {
  els.filterForm.reset();
  applyFilters();
});

// Enter in the message field submits the form, as the Send button does.
els.sendForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = els.message.value;
  const author = els.author.value.trim();
  if (!author) {
    els.author.focus();
    return fail(new Error('Type your name in Author first.'));
  }
  if (!text.trim()) return;
  els.send.disabled = true;
  try {
    room.upsert(await room.send(author, text));
    els.message.value = '';
    showError(els.error, null);
  } catch (err) {
    fail(err);
  } finally {
    els.send.disabled = false;
    els.message.focus();
  }
});

// The dev aid, when the local runtime serves the page (it alone has an invoke endpoint).
if (config.invokeURL) {
  els.announceForm.hidden = false;
  els.announceForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    els.announceSend.disabled = true;
    const status = els.announceStatus;
    try {
      const a = { roomId: room.id, text: els.announceText.value, priority: Number(els.announcePriority.value) };
      const id = await sendAnnouncement(config.invokeURL, a);
      status.dataset.state = 'sent';
      status.textContent = `Sent event ${id} (priority ${a.priority}) to room ${a.roomId}.`;
    } catch (err) {
      status.dataset.state = 'error';
      status.textContent = `Not sent: ${err.message}`;
    } finally {
      els.announceSend.disabled = false;
    }
  });
}

els.author.value = localStorage.getItem('lambdaws.author') || `guest-${Math.random().toString(36).slice(2, 6)}`;
els.author.addEventListener('change', () => localStorage.setItem('lambdaws.author', els.author.value.trim()));

const fromHash = decodeURIComponent(window.location.hash.slice(1));
openRoom(fromHash || els.room.value || 'lobby');
