// The reconnect scenario (see reconnect-scenario.mjs) with the real `subscriptions-transport-ws`
// npm client (legacy graphql-ws subprotocol), configured as an app would be: reconnect: true. The
// client has no keep-alive of its own (and the server sends no ka), so on API Gateway it is the
// idle timeout that closes it. Like that client in the wild, it sends each start right after
// connection_init, without waiting for the ack, on the first connection and on the new one.
//
// Usage: node e2e/js/legacy-reconnect.mjs <ws-url> <http-url>
import { SubscriptionClient } from 'subscriptions-transport-ws';
import { TapWebSocket, expect, fail, record, run, sink, state, wireOn, wsURL } from './reconnect-scenario.mjs';

let client;
let nextID = '';
await run({
  name: 'legacy-reconnect',
  subscribeType: 'start',
  createClient() {
    client = new SubscriptionClient(
      wsURL,
      {
        reconnect: true, // the library's backoff: about 100 ms before the first attempt
        connectionCallback: (err) => {
          if (err) fail(`connection_error: ${JSON.stringify(err)}`);
        },
      },
      TapWebSocket,
    );
    for (const name of ['connecting', 'connected', 'reconnecting', 'reconnected', 'disconnected']) {
      client.on(name, () => record({ kind: 'event', name, conn: state.conn }));
    }
    // Operation ids are the observers' names, so the wire reads like the observers. (The client
    // numbers operations itself; this changes only the id strings it sends, and it starts the
    // same ids again after a reconnect.)
    client.generateOperationId = () => nextID;
  },
  subscribe(name, request) {
    nextID = name;
    const s = client.request(request).subscribe(sink(name));
    return () => s.unsubscribe();
  },
  query(name, request) {
    return new Promise((resolve) => {
      nextID = name;
      client.request(request).subscribe(sink(name, resolve));
    });
  },
  // The server answers a stop with complete once the subscription is gone; the client drops that
  // complete, so wait for it on the wire.
  unsubscribed: (name) => expect(`the server's complete for the stopped "${name}"`, () => wireOn(state.conn, 'complete', name)),
});
