// The reconnect scenario (see reconnect-scenario.mjs) with the real `graphql-ws` npm client
// (graphql-transport-ws subprotocol), configured as an app on API Gateway would be: it retries the
// runtime's 1001 closes (retryAttempts, with the library's default randomised exponential backoff)
// and keeps its connection active with pings (keepAlive).
//
// Usage: node e2e/js/graphql-ws-reconnect.mjs <ws-url> <http-url>
import { createClient } from 'graphql-ws';
import { TapWebSocket, record, run, sink, sleep, wsURL } from './reconnect-scenario.mjs';

let client;
let nextID = '';
await run({
  name: 'graphql-ws-reconnect',
  subscribeType: 'subscribe',
  createClient() {
    client = createClient({
      url: wsURL,
      webSocketImpl: TapWebSocket,
      retryAttempts: 5, // the library's default, stated: 1001 is retried with backoff
      keepAlive: 1_000, // a ping a second after each pong: well within the runtime's --idle-timeout
      generateID: () => nextID, // operation ids are the sinks' names, so the wire reads like the sinks
      on: {
        connecting: (isRetry) => record({ kind: 'event', name: 'connecting', isRetry }),
        connected: (socket, _payload, wasRetry) => record({ kind: 'event', name: 'connected', conn: socket.conn, wasRetry }),
        closed: (ev) => record({ kind: 'event', name: 'closed', conn: ev?.target?.conn, code: ev?.code, reason: ev?.reason }),
      },
    });
  },
  subscribe(name, payload) {
    nextID = name;
    return client.subscribe(payload, sink(name));
  },
  query(name, payload) {
    return new Promise((resolve) => {
      nextID = name;
      client.subscribe(payload, sink(name, resolve));
    });
  },
  // graphql-transport-ws never acknowledges a client's complete: give the server a moment to
  // process it before the next write.
  unsubscribed: () => sleep(500),
});
