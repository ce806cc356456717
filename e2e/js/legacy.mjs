// The chat scenario with the real `subscriptions-transport-ws` npm client (legacy graphql-ws
// subprotocol). Like that client in the wild, it sends each start right after connection_init,
// without waiting for the ack.
//
// Usage: node e2e/js/legacy.mjs <ws-url> <http-url>
//
// The script drives the scenario and records, one JSON line each on stdout, in arrival order:
//   {"kind":"wire","raw":"..."}                   every message the server sent on the socket
//   {"kind":"next"|"complete"|"error","sub":...}  what the client library handed to each observer
//   {"kind":"mutation","name":...,"data":...}      the result of each HTTP mutation
//   {"kind":"mark","mark":...}                     the scenario's phases: synced, unsubscribed, done
// e2e/clients_test.go asserts the exact sequences. The script itself only waits for what it needs
// to move on, and exits non-zero with {"kind":"fail","message":...} when something never arrives.
import { randomBytes } from 'node:crypto';
import { SubscriptionClient } from 'subscriptions-transport-ws';
import { createHarness } from './harness.mjs';

const { wsURL, emit, fail, setPhase, record, hasMessage, nextOn, waitFor, expect, sleep, send, edit, del, TapWebSocket } =
  createHarness();

const room = `r2-${randomBytes(4).toString('hex')}`;
const otherRoom = `${room}-other`;

let closing = false;
const client = new SubscriptionClient(
  wsURL,
  {
    reconnect: false,
    connectionCallback: (err) => {
      if (err) fail(`connection_error: ${JSON.stringify(err)}`);
    },
  },
  TapWebSocket,
);
client.onDisconnected(() => {
  if (!closing) fail('the socket closed');
});
// Operation ids are the observers' names, so the wire reads like the observers. (The client
// numbers operations itself; this changes only the id strings it sends.)
let nextID = '';
client.generateOperationId = () => nextID;

// subscribe starts an operation whose id is name and records what its observer receives.
function subscribe(name, request, onEnd = () => {}) {
  nextID = name;
  return client.request(request).subscribe({
    next: (payload) => record({ kind: 'next', sub: name, payload }),
    error: (err) => {
      record({ kind: 'error', sub: name, error: err });
      if (!closing) fail(`${name}: error ${JSON.stringify(err)}`);
    },
    complete: () => {
      record({ kind: 'complete', sub: name });
      onEnd();
    },
  });
}
// Three subscriptions on the room, each with its own selection set.
const added = subscribe('added', {
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

// A start is stored asynchronously and never acknowledged: send sentinel rounds (send, edit,
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
  subscribe(
    'query',
    { query: 'query Messages($roomId: ID!) { messages(roomId: $roomId) { id text } }', variables: { roomId: room } },
    resolve,
  );
});

// Stop "added". The server answers a stop with complete once the subscription is gone; the client
// drops that complete, so wait for it on the wire. Then the edit that follows the new message
// proves the message's event was processed without reaching "added".
setPhase('unsubscribe');
emit({ kind: 'mark', mark: 'unsubscribed' });
added.unsubscribe();
await expect('the server\'s complete for the stopped "added"', () => hasMessage('wire', (m) => m.id === 'added' && m.type === 'complete'));
const x3 = await send('x3', room, 'ann', 'after unsubscribe');
await edit('e3', room, x3.id, 'after unsubscribe (edited)');
await expect('the edit of x3 on "edited"', () => nextOn('edited', (d) => d?.messageEdited?.text === 'after unsubscribe (edited)'));
await sleep(200); // let any stray message (a duplicate, a late event, a ka) show up in the record

setPhase('close');
emit({ kind: 'mark', mark: 'done' });
closing = true;
client.close();
