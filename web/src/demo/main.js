// The chat demo: pick a room, see its last messages, send, edit and delete them, and watch every
// other tab on the same room change live. Its parts: api.js (the GraphQL client), room.js (a room's
// state and the subscriptions that keep it current), view.js (the DOM).
import { readConfig, wsOptions } from '../config.js';
import { createAPI } from './api.js';
import { Room } from './room.js';
import { MessageList, showError, showStatus } from './view.js';

const $ = (id) => document.getElementById(id);
const els = {
  status: $('status'),
  roomForm: $('room-form'),
  room: $('room'),
  author: $('author'),
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

const api = createAPI({
  ...readConfig(),
  wsOptions,
  onStatus: (state) => showStatus(els.status, state),
  onReconnected: () => room?.reload().catch(fail),
});

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
  room = new Room(api, id);
  const r = room;
  const render = () => r === room && list.show(r);
  r.on('change', render).on('remove', render).on('error', fail);
  els.title.textContent = `Room ${id}`;
  els.room.value = id;
  document.title = `${id} · lambdaws chat`;
  if (window.location.hash !== `#${encodeURIComponent(id)}`) history.replaceState(null, '', `#${encodeURIComponent(id)}`);
  list.show(r);
  try {
    await r.open();
    showError(els.error, null);
  } catch (err) {
    fail(err);
  }
}

els.roomForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = els.room.value.trim();
  if (id && id !== room?.id) openRoom(id);
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

els.author.value = localStorage.getItem('lambdaws.author') || `guest-${Math.random().toString(36).slice(2, 6)}`;
els.author.addEventListener('change', () => localStorage.setItem('lambdaws.author', els.author.value.trim()));

const fromHash = decodeURIComponent(window.location.hash.slice(1));
openRoom(fromHash || els.room.value || 'lobby');
