// A room's state: its messages by id and its latest announcements, kept current by its feeds (the
// subscriptions that change it), and narrowed by the room's filters (see filters.js): the server
// sends only what passes them, and what the room already holds is shown only when it passes too.
//
// To add a live feature, add a feed: the room subscribes to every feed when it opens, subscribes
// again to each feed whose variables changed when its filters change, and ends them all when it
// closes. A view listens with room.on(event, fn).
import { matches } from './filters.js';

const fields = 'id roomId author text createdAt editedAt';

// Queries and mutations.
export const ops = {
  messages: `query Messages($roomId: ID!, $last: Int) { messages(roomId: $roomId, last: $last) { ${fields} } }`,
  send: `mutation Send($roomId: ID!, $author: String!, $text: String!) { sendMessage(roomId: $roomId, author: $author, text: $text) { ${fields} } }`,
  edit: `mutation Edit($roomId: ID!, $id: ID!, $text: String!) { editMessage(roomId: $roomId, id: $id, text: $text) { ${fields} } }`,
  remove: `mutation Delete($roomId: ID!, $id: ID!) { deleteMessage(roomId: $roomId, id: $id) { id } }`,
};

// feeds are the subscriptions every open room runs; an undefined filter is left out of the
// variables, so the field is not filtered.
export const feeds = [
  {
    name: 'messageAdded',
    query: `subscription Added($roomId: ID!, $filter: MessageFilter) { messageAdded(roomId: $roomId, filter: $filter) { ${fields} } }`,
    variables: (room) => ({ roomId: room.id, filter: room.filters.messages }),
    apply: (room, data) => room.upsert(data.messageAdded),
  },
  {
    name: 'messageEdited',
    query: `subscription Edited($roomId: ID!, $filter: MessageFilter) { messageEdited(roomId: $roomId, filter: $filter) { ${fields} } }`,
    variables: (room) => ({ roomId: room.id, filter: room.filters.authors }),
    apply: (room, data) => room.upsert(data.messageEdited),
  },
  {
    name: 'messageDeleted',
    query: `subscription Deleted($roomId: ID!, $filter: MessageFilter) { messageDeleted(roomId: $roomId, filter: $filter) { id } }`,
    variables: (room) => ({ roomId: room.id, filter: room.filters.authors }),
    apply: (room, data) => room.remove(data.messageDeleted.id),
  },
  {
    name: 'announcement',
    query: `subscription Announcement($roomId: ID!, $filter: AnnouncementFilter) { announcement(roomId: $roomId, filter: $filter) { id roomId text priority at } }`,
    variables: (room) => ({ roomId: room.id, filter: room.filters.announcements }),
    apply: (room, data) => room.announce(data.announcement),
  },
];

// How many messages a room loads when it opens (the API allows 1..500), and how many
// announcements it keeps (they are not stored: a room shows those that arrived while it was open).
export const historySize = 50;
export const announcementsKept = 20;

// Room is one open room. Events: "change" (message, or null after a reload), "remove" (id),
// "announcement" (announcement, or null after the filters changed), "error" (Error, with .feed
// naming the feed whose subscription failed and .refused when the server refused it).
export class Room {
  // filters: narrowing()'s result.
  constructor(api, id, filters = {}) {
    this.api = api;
    this.id = id;
    this.filters = filters;
    this.messages = new Map(); // id → message
    this.deleted = new Set(); // ids deleted while a load was in flight
    this.announcements = new Map(); // id → announcement, in arrival order
    this.subscriptions = new Map(); // feed name → {key: its variables as JSON, stop}
    this.listeners = new Map(); // event → [fn]
  }

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, []);
    this.listeners.get(event).push(fn);
    return this;
  }

  emit(event, value) {
    for (const fn of this.listeners.get(event) ?? []) fn(value);
  }

  // open subscribes to every feed, then loads the history.
  open() {
    return this.subscribe();
  }

  // setFilters narrows the room anew: what it holds is shown through the new filters at once, and
  // each feed whose variables changed is subscribed again (see subscribe).
  setFilters(filters) {
    this.filters = filters;
    this.emit('change', null);
    this.emit('announcement', null);
    return this.subscribe();
  }

  // subscribe (re)subscribes each feed that has no live subscription with its current variables:
  // the old one is completed first, then the new one starts. Then, if any feed changed, it loads
  // the history, so that nothing written in between is missed; an event that arrives before the
  // history is merged with it by id.
  async subscribe() {
    let changed = false;
    for (const feed of feeds) {
      const variables = feed.variables(this);
      const key = JSON.stringify(variables);
      const old = this.subscriptions.get(feed.name);
      if (old?.key === key) continue;
      old?.stop();
      const sub = { key };
      sub.stop = this.api.subscribe(
        feed.query,
        variables,
        (data) => feed.apply(this, data),
        (err) => {
          // A subscription that ended by failure is started again by the next subscribe().
          if (err.ended && this.subscriptions.get(feed.name) === sub) this.subscriptions.delete(feed.name);
          err.feed = feed.name;
          this.emit('error', err);
        },
      );
      this.subscriptions.set(feed.name, sub);
      changed = true;
    }
    if (changed) await this.reload();
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
    for (const sub of this.subscriptions.values()) sub.stop();
    this.subscriptions.clear();
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

  // announce adds an announcement; one delivered twice (delivery is at least once) is kept once.
  announce(a) {
    if (a.roomId !== this.id || this.announcements.has(a.id)) return;
    this.announcements.set(a.id, a);
    if (this.announcements.size > announcementsKept) this.announcements.delete(this.announcements.keys().next().value);
    this.emit('announcement', a);
  }

  // list returns the messages that pass the filters, oldest first (ids are ULIDs: they sort by time).
  list() {
    const all = [...this.messages.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return all.filter((m) => matches(this.filters.messages, m));
  }

  // announcementList returns the announcements that pass the filters, newest first.
  announcementList() {
    return [...this.announcements.values()].reverse().filter((a) => matches(this.filters.announcements, a));
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
