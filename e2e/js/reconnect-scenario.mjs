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
import { createHarness, describeError } from './harness.mjs';

const h = createHarness({ timed: true });
export const { wsURL, emit, fail, record, expect, sleep } = h;
const { setPhase, has, hasMessage, nextOn, waitFor, send, edit, del } = h;
// conn is the number of the newest socket, the one open (or opening) now; holding, that the
// scenario is over and the script only holds its connection.
export const state = { conn: 0, holding: false };

// wireOn reports whether the server sent a message of type (and id, unless undefined) on socket conn.
export const wireOn = (conn, type, id) =>
  hasMessage('wire', (m, r) => r.conn === conn && m.type === type && (id === undefined || m.id === id));
// sentOn reports whether the client sent a message of type with id on socket conn.
const sentOn = (conn, type, id) => hasMessage('sent', (m, r) => r.conn === conn && m.type === type && m.id === id);

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
      const error = describeError(err);
      record({ kind: 'error', sub: name, conn: state.conn, error });
      if (!state.holding) fail(`${name}: error ${JSON.stringify(error)}`);
    },
    complete: () => {
      record({ kind: 'complete', sub: name, conn: state.conn });
      onComplete();
    },
  };
}

// run drives the scenario. The adapter wraps one client library:
//   name                     the script's name, which names the room
//   subscribeType            the client's message type for an operation: subscribe or start
//   createClient()           creates the client, with TapWebSocket as its WebSocket
//   subscribe(name, payload) starts an operation whose id is name, with sink(name); returns the
//                            function that unsubscribes it
//   query(name, payload)     runs a query over the socket; resolves when its sink completed
//   unsubscribed(name)       resolves once the server has had time to process name's unsubscribe
export async function run(adapter) {
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
  setPhase('sync-1');
  const rounds1 = await sync('sync1');
  emit({ kind: 'mark', mark: 'synced-1', room, rounds: rounds1 });
  const x0 = await send('x0', room, 'ann', 'before the close');
  await expect('x0 on "added"', () => nextOn('added', (d) => d?.messageAdded?.id === x0.id));

  // The runtime closes the first socket (a limit: the connection's age or idleness); the script
  // sends nothing on it meanwhile (graphql-ws's keep-alive pings aside).
  setPhase('wait-close');
  emit({ kind: 'mark', mark: 'closing' });
  await expect('the runtime to close connection 1', () => has((r) => r.kind === 'close' && r.conn === 1), 15_000);
  emit({ kind: 'mark', mark: 'closed' });

  // A write while the client is disconnected: its event may be missed (nothing holds it for a
  // connection that does not exist yet); e2e/reconnect_test.go reports what happened to it.
  const w1 = await send('w1', room, 'ann', 'while disconnected');

  // The client reconnects and resubscribes on its own: a new socket, a new connection_init, and
  // the same three operations started again on it.
  setPhase('reconnect');
  await expect('a second connection acknowledged', () => wireOn(2, 'connection_ack'), 15_000);
  for (const id of ['added', 'edited', 'deleted']) {
    await expect(`"${id}" resubscribed on connection 2`, () => sentOn(2, adapter.subscribeType, id), 5_000);
  }
  emit({ kind: 'mark', mark: 'reconnected', w1: w1.id });

  // Live again: the chat scenario of graphql-ws.mjs and legacy.mjs, on the new connection.
  setPhase('sync-2');
  const rounds2 = await sync('sync2');
  emit({ kind: 'mark', mark: 'synced', rounds: rounds2 });

  setPhase('scenario');
  const x1 = await send('x1', room, 'ann', 'hello');
  await send('o1', otherRoom, 'ann', 'elsewhere');
  const x2 = await send('x2', room, 'bob', 'second');
  await edit('e1', room, x1.id, 'hello (edited)');
  await del('d2', room, x2.id);
  await expect('the delete of x2 on "deleted"', () => nextOn('deleted', (d) => d?.gone?.id === x2.id));

  setPhase('query');
  await adapter.query('query', {
    query: 'query Messages($roomId: ID!) { messages(roomId: $roomId) { id text } }',
    variables: { roomId: room },
  });

  setPhase('unsubscribe');
  emit({ kind: 'mark', mark: 'unsubscribed' });
  unsubscribeAdded();
  await adapter.unsubscribed('added');
  const x3 = await send('x3', room, 'ann', 'after unsubscribe');
  await edit('e3', room, x3.id, 'after unsubscribe (edited)');
  await expect('the edit of x3 on "edited"', () => nextOn('edited', (d) => d?.messageEdited?.text === 'after unsubscribe (edited)'));
  await sleep(200); // let any stray message (a duplicate, a late event) show up in the record

  // Hold the connection until it closes: e2e/reconnect_test.go kills the runtime now.
  setPhase('hold');
  state.holding = true;
  const last = state.conn;
  emit({ kind: 'mark', mark: 'done' });
  await expect(`connection ${last} to close`, () => has((r) => r.kind === 'close' && r.conn === last), 15_000);
  process.exit(0);
}
