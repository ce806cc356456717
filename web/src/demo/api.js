// The GraphQL client of the demo: requests over HTTP POST, subscriptions over the WebSocket API
// with graphql-transport-ws (graphql-ws's client).
import { createClient } from 'graphql-ws';

// createAPI returns request and subscribe over the two endpoints. onStatus is called with
// "connecting", "live", "reconnecting" or "offline"; onReconnected after each reconnect, when
// events may have been missed while the socket was down.
export function createAPI({ httpURL, webSocketURL, wsOptions, onStatus = () => {}, onReconnected = () => {} }) {
  let connectedBefore = false;
  const ws = createClient({
    url: webSocketURL,
    ...wsOptions,
    on: {
      connecting: () => onStatus(connectedBefore ? 'reconnecting' : 'connecting'),
      connected: () => {
        onStatus('live');
        if (connectedBefore) onReconnected();
        connectedBefore = true;
      },
      closed: () => onStatus('offline'),
    },
  });

  // request runs a query or mutation and returns its data; GraphQL errors become one Error.
  async function request(query, variables) {
    const res = await fetch(httpURL, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' },
      body: JSON.stringify({ query, variables }),
    });
    let body;
    try {
      body = await res.json();
    } catch {
      throw new Error(`HTTP ${res.status} ${res.statusText}`);
    }
    if (body.errors?.length) throw new Error(body.errors.map((e) => e.message).join('; '));
    if (!res.ok || !body.data) throw new Error(`HTTP ${res.status} ${res.statusText}`);
    return body.data;
  }

  // subscribe starts a subscription; onData gets each result's data, onError each failure: GraphQL
  // errors in a result, or the subscription's end by failure (.ended; see failure). It returns the
  // function that ends the subscription (graphql-ws sends complete).
  function subscribe(query, variables, onData, onError) {
    return ws.subscribe(
      { query, variables },
      {
        next: (result) => {
          if (result.errors?.length) onError(new Error(result.errors.map((e) => e.message).join('; ')));
          if (result.data) onData(result.data);
        },
        error: (err) => onError(Object.assign(failure(err), { ended: true })),
        complete: () => {},
      },
    );
  }

  return { request, subscribe };
}

// failure turns what graphql-ws reports to a subscription's error sink into an Error: the server's
// GraphQL errors when it refused the subscription (.refused is true; the messages are the server's),
// the close event of a socket that closed for good, or anything else.
function failure(err) {
  if (Array.isArray(err)) return Object.assign(new Error(err.map((e) => e.message).join('; ')), { refused: true });
  if (err instanceof Error) return err;
  if (err && typeof err === 'object' && 'code' in err) return new Error(`the socket closed (${err.code} ${err.reason || ''})`.trim());
  return new Error(String(err));
}
