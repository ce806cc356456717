// GraphiQL for lambdaws: queries and mutations over HTTP POST, subscriptions over the WebSocket API
// with graphql-transport-ws (graphql-ws's client). ?query=, ?variables= and ?operationName= in the
// page's URL fill the editors, so a link can carry an operation.
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import 'graphiql/style.css';
import { createClient } from 'graphql-ws';
import { createRoot } from 'react-dom/client';
import { readConfig, wsOptions } from '../config.js';

const { httpURL, webSocketURL } = readConfig();

const defaultQuery = `# GraphiQL on lambdaws.
#
# Subscriptions run over the WebSocket API (${webSocketURL}),
# queries and mutations over HTTP (${httpURL}).
#
# Run OnMessage (the ▶ button, or Ctrl-Enter), then send a message from another tab
# (or from the demo at /demo) and watch it arrive here.

subscription OnMessage {
  messageAdded(roomId: "lobby") { id author text createdAt }
}

mutation Send {
  sendMessage(roomId: "lobby", author: "graphiql", text: "hello") { id createdAt }
}

query Last {
  messages(roomId: "lobby", last: 10) { id author text createdAt editedAt }
}
`;

const wsClient = createClient({ url: webSocketURL, ...wsOptions });
const fetcher = createGraphiQLFetcher({ url: httpURL, wsClient, enableIncrementalDelivery: false });

const params = new URLSearchParams(window.location.search);
const fromURL = (name) => params.get(name) ?? undefined;

createRoot(document.getElementById('graphiql')).render(
  <GraphiQL
    fetcher={fetcher}
    defaultQuery={defaultQuery}
    query={fromURL('query')}
    variables={fromURL('variables')}
    operationName={fromURL('operationName')}
    isHeadersEditorEnabled={false}
  >
    <GraphiQL.Logo>lambdaws</GraphiQL.Logo>
  </GraphiQL>,
);
