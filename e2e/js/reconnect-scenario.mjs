// The reconnect scenario, shared by graphql-ws-reconnect.mjs and legacy-reconnect.mjs: the
// runtime (started with short --max-duration and --idle-timeout) closes the client's socket while
// it has three active subscriptions; the client, configured to survive that as a real app would,
// reconnects and resubscribes on its own; then the chat scenario of graphql-ws.mjs and legacy.mjs
// runs on the new connection.
//
// Each script passes an adapter for its client library (see run below). The scenario records, one
// JSON line each on stdout, in arrival order, every line with "t" (ms since the script started):
//   {"kind":"dial"|"open","conn":n}                    socket n was created / opened (1, 2, ...)
//   {"kind":"wire","conn":n,"raw":"..."}               every message the server sent on socket n
//   {"kind":"sent","conn":n,"raw":"..."}               every message the client sent on socket n
//   {"kind":"close","conn":n,"code":c,"reason":"..."}  socket n closed, with the code it saw
//   {"kind":"client-close","conn":n,"code":c}          the client itself started closing socket n
//   {"kind":"event","name":...,"conn":n,...}           the client library's own connection events
//   {"kind":"next"|"complete"|"error","sub":...,"conn":n}  what the library handed to each sink
//                                                      (conn: the socket open at that moment)
//   {"kind":"mutation","name":...,"data":...}          the result of each HTTP mutation
//   {"kind":"mark","mark":...}                         the phases: synced-1, closing, closed,
//                                                      reconnected, synced, unsubscribed, done
// After "done" the script keeps the connection open until it closes (e2e/reconnect_test.go kills
// the runtime there, to inspect its registry), then exits without closing the client: nothing it
// would send may change the registry first. e2e/reconnect_test.go asserts the exact sequences.
// The script itself only waits for what it needs to move on, and exits non-zero with
// {"kind":"fail","message":...} when something never arrives.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

const started = performance.now();
const elapsed = () => Math.round(performance.now() - started);

export const [wsURL, httpURL] = process.argv.slice(2);

export const emit = (line) => process.stdout.write(JSON.stringify({ ...line, t: elapsed() }) + '\n');
export const state = { phase: 'connecting', conn: 0, holding: false };
export function fail(message) {
  message = `${message} (phase: ${state.phase})`;
  emit({ kind: 'fail', message });
  console.error(message);
  process.exit(1);
}

// Everything recorded so far, and the waiters re-checked after each record.
const records = [];
let waiters = [];
export function record(line) {
  emit(line);
  records.push(line);
  waiters = waiters.filter((check) => !check());
}
const has = (pred) => records.some(pred);

// waitFor resolves true once pred holds, or false after ms.
function waitFor(pred, ms) {
  if (pred()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      waiters = waiters.filter((w) => w !== check);
      resolve(false);
    }, ms);
    const check = () => {
      if (!pred()) return false;
      clearTimeout(timer);
      resolve(true);
      return true;
    };
    waiters.push(check);
  });
}
export async function expect(what, pred, ms = 10_000) {
  if (!(await waitFor(pred, ms))) fail(`waited ${ms} ms for ${what}; it never arrived`);
}
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// wireOn reports whether the server sent a message of type (and id, unless undefined) on socket conn.
export const wireOn = (conn, type, id) =>
  has((r) => {
    if (r.kind !== 'wire' || r.conn !== conn) return false;
    try {
      const m = JSON.parse(r.raw);
      return m.type === type && (id === undefined || m.id === id);
    } catch {
      return false;
    }
  });
// sentOn reports whether the client sent a message of type with id on socket conn.
const sentOn = (conn, type, id) =>
  has((r) => {
    if (r.kind !== 'sent' || r.conn !== conn) return false;
    try {
      const m = JSON.parse(r.raw);
      return m.type === type && m.id === id;
    } catch {
      return false;
    }
  });

// TapWebSocket is the ws WebSocket that numbers its sockets and records what happens on each: every
// message the server sends (before the client library sees it: the library drops messages for ids
// it no longer listens to), every message the client sends, and the close code the socket saw.
export class TapWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    const conn = ++state.conn;
    this.conn = conn;
    record({ kind: 'dial', conn });
    this.on('open', () => record({ kind: 'open', conn }));
    this.on('message', (data) => record({ kind: 'wire', conn, raw: String(data) }));
    this.on('close', (code, reason) => record({ kind: 'close', conn, code, reason: String(reason) }));
  }
  send(data, ...rest) {
    record({ kind: 'sent', conn: this.conn, raw: String(data) });
    return super.send(data, ...rest);
  }
  close(code, reason) {
    // ws calls close itself to answer the server's close frame; record only a close the client
    // starts on an open socket.
    if (this.readyState === WebSocket.OPEN && !this._closeFrameReceived) {
      record({ kind: 'client-close', conn: this.conn, code, reason: reason === undefined ? undefined : String(reason) });
    }
    return super.close(code, reason);
  }
}

// sink returns the observer of the operation named name: it records what the library hands it.
export function sink(name, onComplete = () => {}) {
  return {
    next: (payload) => record({ kind: 'next', sub: name, conn: state.conn, payload }),
    error: (err) => {
      const error = Array.isArray(err) ? err : err && typeof err === 'object' && 'code' in err ? { code: err.code, reason: err.reason } : String(err?.message ?? err);
      record({ kind: 'error', sub: name, conn: state.conn, error });
      if (!state.holding) fail(`${name}: error ${JSON.stringify(error)}`);
    },
    complete: () => {
      record({ kind: 'complete', sub: name, conn: state.conn });
      onComplete();
    },
  };
}

// Mutations go over HTTP, as any writer's would.
async function gql(name, query, variables) {
  const res = await fetch(httpURL, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    fail(`${name}: HTTP ${res.status}, not JSON: ${text}`);
  }
  if (!res.ok || body.errors || !body.data) fail(`${name}: HTTP ${res.status}: ${text}`);
  record({ kind: 'mutation', name, data: body.data });
  return body.data;
}
const send = async (name, roomId, author, text) =>
  (await gql(name, 'mutation($roomId: ID!, $author: String!, $text: String!) { sendMessage(roomId: $roomId, author: $author, text: $text) { id roomId author text } }', { roomId, author, text })).sendMessage;
const edit = async (name, roomId, id, text) =>
  (await gql(name, 'mutation($roomId: ID!, $id: ID!, $text: String!) { editMessage(roomId: $roomId, id: $id, text: $text) { id text editedAt } }', { roomId, id, text })).editMessage;
const del = async (name, roomId, id) =>
  (await gql(name, 'mutation($roomId: ID!, $id: ID!) { deleteMessage(roomId: $roomId, id: $id) { id } }', { roomId, id })).deleteMessage;

const nextOn = (sub, pred) => has((r) => r.kind === 'next' && r.sub === sub && pred(r.payload?.data));

// run drives the scenario. The adapter wraps one client library:
//   name                     the script's name, for messages
//   subscribeType            the client's message type for an operation: subscribe or start
//   createClient()           creates the client, with TapWebSocket as its WebSocket
//   subscribe(name, payload) starts an operation whose id is name, with sink(name); returns the
//                            function that unsubscribes it
//   query(name, payload)     runs a query over the socket; resolves when its sink completed
//   unsubscribed(name)       resolves once the server has had time to process name's unsubscribe
export async function run(adapter) {
  if (!wsURL || !httpURL) {
    console.error(`usage: node ${adapter.name}.mjs <ws-url> <http-url>`);
    process.exit(2);
  }
  setTimeout(() => fail('timed out after 30s'), 30_000).unref();

  const room = `${adapter.name}-${randomBytes(4).toString('hex')}`;
  const otherRoom = `${room}-other`;
  adapter.createClient();

  // Three subscriptions on the room, each with its own selection set.
  const unsubscribeAdded = adapter.subscribe('added', {
    query: `subscription { messageAdded(roomId: ${JSON.stringify(room)}) { id text } }`,
  });
  adapter.subscribe('edited', {
    query: 'subscription($roomId: ID!) { messageEdited(roomId: $roomId) { text editedAt } }',
    variables: { roomId: room },
  });
  adapter.subscribe('deleted', {
    query: `subscription Other { messageAdded(roomId: "nowhere") { id } }
      subscription Gone($roomId: ID!) { gone: messageDeleted(roomId: $roomId) { id } }`,
    operationName: 'Gone',
    variables: { roomId: room },
  });

  // A subscribe is stored asynchronously and never acknowledged: send sentinel rounds (send, edit,
  // delete) until one reaches all three subscriptions. Events arrive in write order, so once the
  // delete of the last round sent has arrived, no sentinel event is still in flight (and no event
  // of an earlier write is either).
  async function sync(prefix) {
    const rounds = [];
    const roundDone = ({ n, id }) =>
      nextOn('added', (d) => d?.messageAdded?.id === id) &&
      nextOn('edited', (d) => d?.messageEdited?.text === `${prefix}-${n} (edited)`) &&
      nextOn('deleted', (d) => d?.gone?.id === id);
    for (let n = 1; ; n++) {
      const m = await send(`${prefix}-${n}`, room, 'sync', `${prefix}-${n}`);
      await edit(`${prefix}-${n}-edit`, room, m.id, `${prefix}-${n} (edited)`);
      await del(`${prefix}-${n}-delete`, room, m.id);
      rounds.push({ n, id: m.id });
      if (await waitFor(() => rounds.some(roundDone), 300)) break;
    }
    await expect(`all three events of sentinel round ${prefix}-${rounds.length}`, () => roundDone(rounds.at(-1)));
    return rounds.length;
  }

  // The first connection: the subscriptions are live.
  state.phase = 'sync-1';
  const rounds1 = await sync('sync1');
  emit({ kind: 'mark', mark: 'synced-1', room, rounds: rounds1 });
  const x0 = await send('x0', room, 'ann', 'before the close');
  await expect('x0 on "added"', () => nextOn('added', (d) => d?.messageAdded?.id === x0.id));

  // The runtime closes the first socket (a limit: the connection's age or idleness); the script
  // sends nothing on it meanwhile (graphql-ws's keep-alive pings aside).
  state.phase = 'wait-close';
  emit({ kind: 'mark', mark: 'closing' });
  await expect('the runtime to close connection 1', () => has((r) => r.kind === 'close' && r.conn === 1), 15_000);
  emit({ kind: 'mark', mark: 'closed' });

  // A write while the client is disconnected: its event may be missed (nothing holds it for a
  // connection that does not exist yet); e2e/reconnect_test.go reports what happened to it.
  const w1 = await send('w1', room, 'ann', 'while disconnected');

  // The client reconnects and resubscribes on its own: a new socket, a new connection_init, and
  // the same three operations started again on it.
  state.phase = 'reconnect';
  await expect('a second connection acknowledged', () => wireOn(2, 'connection_ack'), 15_000);
  for (const id of ['added', 'edited', 'deleted']) {
    await expect(`"${id}" resubscribed on connection 2`, () => sentOn(2, adapter.subscribeType, id), 5_000);
  }
  emit({ kind: 'mark', mark: 'reconnected', w1: w1.id });

  // Live again: the chat scenario of graphql-ws.mjs and legacy.mjs, on the new connection.
  state.phase = 'sync-2';
  const rounds2 = await sync('sync2');
  emit({ kind: 'mark', mark: 'synced', rounds: rounds2 });

  state.phase = 'scenario';
  const x1 = await send('x1', room, 'ann', 'hello');
  await send('o1', otherRoom, 'ann', 'elsewhere');
  const x2 = await send('x2', room, 'bob', 'second');
  await edit('e1', room, x1.id, 'hello (edited)');
  await del('d2', room, x2.id);
  await expect('the delete of x2 on "deleted"', () => nextOn('deleted', (d) => d?.gone?.id === x2.id));

  state.phase = 'query';
  await adapter.query('query', {
    query: 'query Messages($roomId: ID!) { messages(roomId: $roomId) { id text } }',
    variables: { roomId: room },
  });

  state.phase = 'unsubscribe';
  emit({ kind: 'mark', mark: 'unsubscribed' });
  unsubscribeAdded();
  await adapter.unsubscribed('added');
  const x3 = await send('x3', room, 'ann', 'after unsubscribe');
  await edit('e3', room, x3.id, 'after unsubscribe (edited)');
  await expect('the edit of x3 on "edited"', () => nextOn('edited', (d) => d?.messageEdited?.text === 'after unsubscribe (edited)'));
  await sleep(200); // let any stray message (a duplicate, a late event) show up in the record

  // Hold the connection until it closes: e2e/reconnect_test.go kills the runtime now.
  state.phase = 'hold';
  state.holding = true;
  const last = state.conn;
  emit({ kind: 'mark', mark: 'done' });
  await expect(`connection ${last} to close`, () => has((r) => r.kind === 'close' && r.conn === last), 15_000);
  process.exit(0);
}
