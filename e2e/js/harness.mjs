// The machinery the client scripts share (graphql-ws.mjs, legacy.mjs and reconnect-scenario.mjs):
// the command line, the JSON lines on stdout, waiting for what arrived, and the writes over HTTP.
//
// A script calls createHarness once, at its start, and reads its lines like a scenario:
//   const { wsURL, emit, record, expect, send, setPhase, ... } = createHarness();
//   setPhase('sync');
//   const m = await send('x1', room, 'ann', 'hello');
//   await expect('x1 on "added"', () => nextOn('added', (d) => d?.messageAdded?.id === m.id));
// Each script's own comment lists the lines it prints; e2e/clients_test.go and
// e2e/reconnect_test.go parse them.
import { basename } from 'node:path';
import WebSocket from 'ws';

// describeError turns what a client library hands an error sink into something JSON shows: GraphQL
// errors as they are, a close event as its code and reason, anything else as its message.
export function describeError(err) {
  if (Array.isArray(err)) return err; // GraphQL errors
  if (err && typeof err === 'object' && 'code' in err) return { code: err.code, reason: err.reason }; // a close event
  return String(err?.message ?? err);
}

// createHarness reads the command line (<ws-url> <http-url>: it exits 2 with the usage without
// them) and arms the script's timeout: after timeoutMs the script fails. With timed, every line it
// prints carries "t", the ms since the harness was created.
export function createHarness({ timed = false, timeoutMs = 30_000 } = {}) {
  const started = performance.now();
  const [wsURL, httpURL] = process.argv.slice(2);
  if (!wsURL || !httpURL) {
    console.error(`usage: node ${basename(process.argv[1])} <ws-url> <http-url>`);
    process.exit(2);
  }

  // emit prints one line; fail prints {"kind":"fail","message":...}, naming the phase the script
  // was in, and exits 1.
  const emit = timed
    ? (line) => process.stdout.write(JSON.stringify({ ...line, t: Math.round(performance.now() - started) }) + '\n')
    : (line) => process.stdout.write(JSON.stringify(line) + '\n');
  let phase = 'connecting';
  const setPhase = (name) => {
    phase = name;
  };
  function fail(message) {
    message = `${message} (phase: ${phase})`;
    emit({ kind: 'fail', message });
    console.error(message);
    process.exit(1);
  }
  setTimeout(() => fail(`timed out after ${timeoutMs / 1000}s`), timeoutMs).unref();

  // Everything recorded so far, and the waiters re-checked after each record.
  const records = [];
  let waiters = [];
  function record(line) {
    emit(line);
    records.push(line);
    waiters = waiters.filter((check) => !check());
  }
  const has = (pred) => records.some(pred);
  // hasMessage reports whether a record of kind (wire, or sent) holds a message that, parsed,
  // satisfies pred(message, record).
  const hasMessage = (kind, pred) =>
    has((r) => {
      if (r.kind !== kind) return false;
      try {
        return pred(JSON.parse(r.raw), r);
      } catch {
        return false;
      }
    });
  // nextOn reports whether the sink of the operation sub received a result whose data satisfies pred.
  const nextOn = (sub, pred) => has((r) => r.kind === 'next' && r.sub === sub && pred(r.payload?.data));

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
  // expect waits for pred like waitFor, and fails the script if it does not hold within ms.
  async function expect(what, pred, ms = 10_000) {
    if (!(await waitFor(pred, ms))) fail(`waited ${ms} ms for ${what}; it never arrived`);
  }
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // Mutations go over HTTP, as any writer's would. Each result is recorded as
  // {"kind":"mutation","name":...,"data":...}; a failed one fails the script.
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

  // TapWebSocket is the ws WebSocket that also records every message the server sends, as
  // {"kind":"wire","raw":"..."}, before the client library sees it: the libraries drop messages
  // for ids they no longer listen to (and subscriptions-transport-ws never reports the complete
  // that answers a stop), so only the wire can show what arrived for them.
  class TapWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      this.on('message', (data) => record({ kind: 'wire', raw: String(data) }));
    }
  }

  return { wsURL, httpURL, emit, fail, setPhase, record, has, hasMessage, nextOn, waitFor, expect, sleep, gql, send, edit, del, TapWebSocket };
}
