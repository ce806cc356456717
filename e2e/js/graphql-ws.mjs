// The chat scenario with the real `graphql-ws` npm client (graphql-transport-ws subprotocol).
//
// Usage: node e2e/js/graphql-ws.mjs <ws-url> <http-url>
//
// The script drives the scenario and records, one JSON line each on stdout, in arrival order:
//   {"kind":"wire","raw":"..."}                   every message the server sent on the socket
//   {"kind":"next"|"complete"|"error","sub":...}  what the client library handed to each sink
//   {"kind":"mutation","name":...,"data":...}      the result of each HTTP mutation
//   {"kind":"mark","mark":...}                     the scenario's phases: synced, unsubscribed, done
// e2e/clients_test.go asserts the exact sequences. The script itself only waits for what it needs
// to move on, and exits non-zero with {"kind":"fail","message":...} when something never arrives.
import { randomBytes } from 'node:crypto';
import { createClient } from 'graphql-ws';
import { createHarness, describeError } from './harness.mjs';

const { wsURL, emit, fail, setPhase, record, nextOn, waitFor, expect, sleep, send, edit, del, TapWebSocket } =
  createHarness();

const room = `r1-${randomBytes(4).toString('hex')}`;
const otherRoom = `${room}-other`;

let nextID = '';
let disposing = false;
const client = createClient({
  url: wsURL,
  webSocketImpl: TapWebSocket,
  retryAttempts: 0,
  shouldRetry: () => false,
  generateID: () => nextID, // operation ids are the sinks' names, so the wire reads like the sinks
  on: {
    closed: (ev) => {
      if (!disposing) fail(`the socket closed: ${JSON.stringify(describeError(ev))}`);
    },
  },
});

// subscribe starts an operation whose id is name and records what its sink receives.
function subscribe(name, payload) {
  nextID = name;
  return client.subscribe(payload, {
    next: (payload) => record({ kind: 'next', sub: name, payload }),
    error: (err) => {
      record({ kind: 'error', sub: name, error: describeError(err) });
      if (!disposing) fail(`${name}: error ${JSON.stringify(describeError(err))}`);
    },
    complete: () => record({ kind: 'complete', sub: name }),
  });
}

// Three subscriptions on the room, each with its own selection set.
const unsubscribeAdded = subscribe('added', {
  query: `subscription { messageAdded(roomId: ${JSON.stringify(room)}) { id text } }`,
});
subscribe('edited', {
  query: 'subscription($roomId: ID!) { messageEdited(roomId: $roomId) { text editedAt } }',
  variables: { roomId: room },
});
subscribe('deleted', {
  query: `subscription Other { messageAdded(roomId: "nowhere") { id } }
    subscription Gone($roomId: ID!) { gone: messageDeleted(roomId: $roomId) { id } }`,
  operationName: 'Gone',
  variables: { roomId: room },
});

// A subscribe is stored asynchronously and never acknowledged: send sentinel rounds (send, edit,
// delete) until one reaches all three subscriptions. Events arrive in write order, so once the
// delete of the last round sent has arrived, no sentinel event is still in flight.
setPhase('sync');
const rounds = [];
const roundDone = ({ n, id }) =>
  nextOn('added', (d) => d?.messageAdded?.id === id) &&
  nextOn('edited', (d) => d?.messageEdited?.text === `sync-${n} (edited)`) &&
  nextOn('deleted', (d) => d?.gone?.id === id);
for (let n = 1; ; n++) {
  const m = await send(`sync-${n}`, room, 'sync', `sync-${n}`);
  await edit(`sync-${n}-edit`, room, m.id, `sync-${n} (edited)`);
  await del(`sync-${n}-delete`, room, m.id);
  rounds.push({ n, id: m.id });
  if (await waitFor(() => rounds.some(roundDone), 300)) break;
}
await expect(`all three events of sentinel round ${rounds.length}`, () => roundDone(rounds.at(-1)));
emit({ kind: 'mark', mark: 'synced', rounds: rounds.length });

// The scenario: writes over HTTP, including one to another room that must not arrive.
setPhase('scenario');
const x1 = await send('x1', room, 'ann', 'hello');
await send('o1', otherRoom, 'ann', 'elsewhere');
const x2 = await send('x2', room, 'bob', 'second');
await edit('e1', room, x1.id, 'hello (edited)');
await del('d2', room, x2.id);
await expect('the delete of x2 on "deleted"', () => nextOn('deleted', (d) => d?.gone?.id === x2.id));

// A query over the socket: one result, then complete.
setPhase('query');
await new Promise((resolve) => {
  nextID = 'query';
  client.subscribe(
    { query: 'query Messages($roomId: ID!) { messages(roomId: $roomId) { id text } }', variables: { roomId: room } },
    {
      next: (payload) => record({ kind: 'next', sub: 'query', payload }),
      error: (err) => fail(`query: error ${JSON.stringify(describeError(err))}`),
      complete: () => {
        record({ kind: 'complete', sub: 'query' });
        resolve();
      },
    },
  );
});

// Unsubscribe "added" (the client sends complete). graphql-transport-ws never acknowledges a
// client's complete, so give the server a moment to process it before the next write; then the
// edit that follows the new message proves the message's event was processed without reaching
// "added".
setPhase('unsubscribe');
emit({ kind: 'mark', mark: 'unsubscribed' });
unsubscribeAdded();
await sleep(500);
const x3 = await send('x3', room, 'ann', 'after unsubscribe');
await edit('e3', room, x3.id, 'after unsubscribe (edited)');
await expect('the edit of x3 on "edited"', () => nextOn('edited', (d) => d?.messageEdited?.text === 'after unsubscribe (edited)'));
await sleep(200); // let any stray message (a duplicate, a late event) show up in the record

setPhase('close');
emit({ kind: 'mark', mark: 'done' });
disposing = true;
await client.dispose();
