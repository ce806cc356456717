// A room's state: its messages by id, kept current by its feeds (the subscriptions that change it)
// and shown through filters (predicates a message must pass to be shown).
//
// To add a live feature, add a feed: the room subscribes to every feed when it opens and ends them
// all when it closes. For example, announcements:
//
//   feeds.push({
//     name: 'announcement',
//     query: 'subscription($roomId: ID!, $filter: String) { announcement(roomId: $roomId, filter: $filter) { text } }',
//     variables: (room) => ({ roomId: room.id, filter: room.options.announcementFilter }),
//     apply: (room, data) => room.emit('announcement', data.announcement),
//   });
//
// and a view listens with room.on('announcement', ...). A message filter is room.setFilter(name,
// predicate); room.setFilter(name, null) removes it.

const fields = 'id roomId author text createdAt editedAt';

// Queries and mutations.
export const ops = {
  messages: `query Messages($roomId: ID!, $last: Int) { messages(roomId: $roomId, last: $last) { ${fields} } }`,
  send: `mutation Send($roomId: ID!, $author: String!, $text: String!) { sendMessage(roomId: $roomId, author: $author, text: $text) { ${fields} } }`,
  edit: `mutation Edit($roomId: ID!, $id: ID!, $text: String!) { editMessage(roomId: $roomId, id: $id, text: $text) { ${fields} } }`,
  remove: `mutation Delete($roomId: ID!, $id: ID!) { deleteMessage(roomId: $roomId, id: $id) { id } }`,
};

// feeds are the subscriptions every open room runs.
export const feeds = [
  {
    name: 'messageAdded',
    query: `subscription Added($roomId: ID!) { messageAdded(roomId: $roomId) { ${fields} } }`,
    variables: (room) => ({ roomId: room.id }),
    apply: (room, data) => room.upsert(data.messageAdded),
  },
  {
    name: 'messageEdited',
    query: `subscription Edited($roomId: ID!) { messageEdited(roomId: $roomId) { ${fields} } }`,
    variables: (room) => ({ roomId: room.id }),
    apply: (room, data) => room.upsert(data.messageEdited),
  },
  {
    name: 'messageDeleted',
    query: `subscription Deleted($roomId: ID!) { messageDeleted(roomId: $roomId) { id } }`,
    variables: (room) => ({ roomId: room.id }),
    apply: (room, data) => room.remove(data.messageDeleted.id),
  },
];

// How many messages a room loads when it opens (the API allows 1..500).
export const historySize = 50;

// Room is one open room. Events: "change" (message, or null after a reload), "remove" (id),
// "error" (Error), plus whatever a feed emits.
export class Room {
  constructor(api, id, options = {}) {
    this.api = api;
    this.id = id;
    this.options = options;
    this.messages = new Map(); // id → message
    this.deleted = new Set(); // ids deleted while a load was in flight
    this.filters = new Map(); // name → predicate
    this.listeners = new Map(); // event → [fn]
    this.stops = [];
  }

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, []);
    this.listeners.get(event).push(fn);
    return this;
  }

  emit(event, value) {
    for (const fn of this.listeners.get(event) ?? []) fn(value);
  }

  // open subscribes to every feed first, then loads the history, so that nothing written in
  // between is missed; an event that arrives before the history is merged with it by id.
  async open() {
    for (const feed of feeds) {
      this.stops.push(
        this.api.subscribe(
          feed.query,
          feed.variables(this),
          (data) => feed.apply(this, data),
          (err) => this.emit('error', new Error(`${feed.name}: ${err.message}`)),
        ),
      );
    }
    await this.reload();
  }

  // reload loads the last messages again (after a reconnect, when events may have been missed).
  async reload() {
    this.deleted.clear();
    const data = await this.api.request(ops.messages, { roomId: this.id, last: historySize });
    const fresh = new Map(data.messages.filter((m) => !this.deleted.has(m.id)).map((m) => [m.id, m]));
    const newest = data.messages.at(-1)?.id ?? '';
    for (const [id, m] of this.messages) {
      if (id > newest && !this.deleted.has(id)) fresh.set(id, m); // arrived after the load read the room
    }
    this.messages = fresh;
    this.emit('change', null);
  }

  close() {
    for (const stop of this.stops.splice(0)) stop();
  }

  upsert(m) {
    if (m.roomId !== this.id || this.deleted.has(m.id)) return;
    const old = this.messages.get(m.id);
    if (old?.editedAt && (!m.editedAt || Date.parse(old.editedAt) > Date.parse(m.editedAt))) return; // an older version, late
    this.messages.set(m.id, m);
    this.emit('change', m);
  }

  remove(id) {
    this.deleted.add(id);
    if (this.messages.delete(id)) this.emit('remove', id);
  }

  // list returns the messages that pass every filter, oldest first (ids are ULIDs: they sort by time).
  list() {
    const all = [...this.messages.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return all.filter((m) => [...this.filters.values()].every((keep) => keep(m)));
  }

  setFilter(name, predicate) {
    if (predicate) this.filters.set(name, predicate);
    else this.filters.delete(name);
    this.emit('change', null);
  }

  send(author, text) {
    return this.api.request(ops.send, { roomId: this.id, author, text }).then((d) => d.sendMessage);
  }

  edit(id, text) {
    return this.api.request(ops.edit, { roomId: this.id, id, text }).then((d) => d.editMessage);
  }

  delete(id) {
    return this.api.request(ops.remove, { roomId: this.id, id }).then((d) => d.deleteMessage);
  }
}
