// The demo's DOM: the message list, kept in step with a Room element by element (so an edit in
// progress survives other messages arriving), the announcements, and the forms that act on the room.

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

// MessageList renders a room into an <ol>.
export class MessageList {
  constructor(ol, { onEdit, onDelete }) {
    this.ol = ol;
    this.onEdit = onEdit;
    this.onDelete = onDelete;
    this.items = new Map(); // id → <li>
  }

  // show renders the room's visible messages in order, reusing the elements it has.
  show(room) {
    const visible = room.list();
    const keep = new Set(visible.map((m) => m.id));
    for (const [id, li] of this.items) {
      if (!keep.has(id)) {
        li.remove();
        this.items.delete(id);
      }
    }
    let prev = null;
    for (const m of visible) {
      let li = this.items.get(m.id);
      if (!li) {
        li = this.create(m);
        this.items.set(m.id, li);
      }
      this.fill(li, m);
      const want = prev ? prev.nextSibling : this.ol.firstChild;
      if (want !== li) this.ol.insertBefore(li, want);
      prev = li;
    }
    this.ol.querySelector(':scope > li.empty')?.remove();
    if (visible.length === 0) {
      const empty = document.createElement('li');
      empty.className = 'empty';
      empty.textContent = 'No messages yet.';
      this.ol.append(empty);
    }
  }

  create(m) {
    const li = document.createElement('li');
    li.dataset.id = m.id;
    li.innerHTML =
      '<div class="body"><span class="author"></span><span class="text"></span>' +
      '<div class="meta"><time></time> <span class="edited" hidden>(edited)</span></div></div>' +
      '<div class="actions"><button type="button" class="edit">Edit</button>' +
      '<button type="button" class="delete">Delete</button></div>';
    li.querySelector('button.edit').addEventListener('click', () => this.startEdit(li));
    li.querySelector('button.delete').addEventListener('click', () => this.onDelete(li.dataset.id));
    return li;
  }

  fill(li, m) {
    li.message = m;
    li.querySelector('.author').textContent = m.author;
    li.querySelector('.text').textContent = m.text;
    const time = li.querySelector('time');
    time.dateTime = m.createdAt;
    time.textContent = timeFormat.format(new Date(m.createdAt));
    li.querySelector('.edited').hidden = !m.editedAt;
  }

  // startEdit swaps the message's text for a labelled form; Enter or Save saves, Escape or Cancel
  // gives up.
  startEdit(li) {
    if (li.querySelector('form')) return;
    const text = li.querySelector('.text');
    const form = document.createElement('form');
    form.className = 'edit-form';
    const inputID = `edit-${li.dataset.id}`;
    form.innerHTML =
      `<label for="${inputID}">Edit message</label>` +
      `<input id="${inputID}" required maxlength="4096" autocomplete="off">` +
      '<button type="submit">Save</button><button type="button" class="cancel">Cancel</button>';
    const input = form.querySelector('input');
    input.value = li.message.text;
    const done = () => {
      form.remove();
      text.hidden = false;
      li.querySelector('button.edit').focus();
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (await this.onEdit(li.dataset.id, input.value)) done();
    });
    form.querySelector('.cancel').addEventListener('click', done);
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') done();
    });
    text.hidden = true;
    text.after(form);
    input.focus();
    input.select();
  }
}

// showAnnouncements renders a room's announcements, newest first, each with its priority
// (data-priority; "high" from 5 up, for the style).
export function showAnnouncements(ol, room) {
  const items = room.announcementList().map((a) => {
    const li = document.createElement('li');
    li.dataset.id = a.id;
    li.dataset.priority = a.priority;
    li.className = a.priority >= 5 ? 'high' : '';
    li.innerHTML = '<span class="priority"></span><span class="text"></span><time></time>';
    li.querySelector('.priority').textContent = `priority ${a.priority}`;
    li.querySelector('.text').textContent = a.text;
    const time = li.querySelector('time');
    time.dateTime = a.at;
    time.textContent = timeFormat.format(new Date(a.at));
    return li;
  });
  if (items.length === 0) {
    const empty = document.createElement('li');
    empty.className = 'empty';
    empty.textContent = 'No announcements since you opened the room.';
    items.push(empty);
  }
  ol.replaceChildren(...items);
}

// Status shows the connection's state.
export function showStatus(el, state) {
  const words = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', offline: 'offline' };
  el.dataset.state = state;
  el.textContent = words[state] ?? state;
}

// showError shows an error (or clears it with null).
export function showError(el, err) {
  el.hidden = !err;
  el.textContent = err ? err.message : '';
}
