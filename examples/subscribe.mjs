// Prints each message sent to the room "lobby" as it arrives.
// Node 20: npm i graphql-ws ws, then node subscribe.mjs [url] (default: the local runtime).
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const url = process.argv[2] ?? 'ws://127.0.0.1:4000/graphql';
const client = createClient({ url, webSocketImpl: WebSocket });

client.subscribe(
  { query: 'subscription { messageAdded(roomId: "lobby") { author text } }' },
  {
    next: (result) => console.log(JSON.stringify(result)),
    error: (err) => {
      console.error(err);
      process.exitCode = 1;
    },
    complete: () => {},
  },
);
