// GraphiQL with a live subscription: page A subscribes to messageAdded for a new room, page B
// (another browser context, as another user would be) sends a message with a mutation, and page A
// shows it. Both pages are the GraphiQL the binary serves: A at / (its operation from ?query=),
// B at /graphql (what a browser gets there), its mutation typed into the editor.
//
// Records (besides browser.mjs's): {"kind":"sent","result":...} B's mutation result,
// {"kind":"received","result":...} what A's result pane showed, {"kind":"sync","rounds":n}.
import { baseURL, emit, run, shot, watch } from './browser.mjs';

const room = `graphiql-${Math.random().toString(36).slice(2, 8)}`;
const subscription = `subscription OnMessage {
  messageAdded(roomId: "${room}") {
    id
    author
    text
  }
}`;
const mutation = `mutation Send { sendMessage(roomId: "${room}", author: "page B", text: "hello from page B") { id author text } }`;

const editorValue = (page, selector) =>
  page.evaluate((sel) => document.querySelector(sel).CodeMirror.getValue(), selector);
const result = (page) => editorValue(page, '.result-window .CodeMirror');
const parsed = async (page) => {
  try {
    return JSON.parse(await result(page));
  } catch {
    return null;
  }
};

async function open(browser, name, url) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = watch(await ctx.newPage(), name);
  await page.goto(url);
  await page.waitForSelector('.graphiql-query-editor .CodeMirror');
  // The schema is loaded (by introspection over HTTP) once the documentation explorer can open.
  await page.waitForFunction(() => !document.querySelector('.graphiql-spinner'));
  return page;
}

// execute clicks ▶ and, for an operation with one result, waits for it. While GraphiQL still
// counts the operations of an editor's earlier contents, ▶ opens a menu to pick one instead: wait
// until it runs the one operation there is.
async function execute(page, { wait = true } = {}) {
  const before = await result(page);
  await page.click('.graphiql-execute-button:not([aria-haspopup])');
  // GraphiQL may clear the pane while the request runs: wait for a new, complete JSON result.
  if (wait) {
    await page.waitForFunction((b) => {
      const v = document.querySelector('.result-window .CodeMirror').CodeMirror.getValue();
      if (v === b) return false;
      try {
        JSON.parse(v);
        return true;
      } catch {
        return false;
      }
    }, before);
  }
}

await run(async (browser) => {
  const a = await open(browser, 'A', `${baseURL}/?query=${encodeURIComponent(subscription)}`);
  if ((await editorValue(a, '.graphiql-query-editor .CodeMirror')) !== subscription) {
    throw new Error('page A did not take its operation from ?query=');
  }
  await execute(a, { wait: false });
  await a.waitForSelector('.graphiql-execute-button[aria-label^="Stop query"]'); // ▶ becomes ■ while subscribed
  await shot(a, 'graphiql-1-subscriber-waiting.png', 'page A: GraphiQL at / running the messageAdded subscription, nothing received yet');

  const b = await open(browser, 'B', `${baseURL}/graphql`);
  await b.click('.graphiql-query-editor .CodeMirror-lines');
  await b.keyboard.press('Control+A');
  await b.keyboard.press('Backspace');
  await b.keyboard.type(mutation);
  await b.keyboard.press('Escape'); // closes the autocompletion list
  await b.click('button[aria-label^="Prettify query"]');
  const typed = await editorValue(b, '.graphiql-query-editor .CodeMirror');
  const bare = (s) => s.replace(/[\s,]+/g, ''); // prettify changes only whitespace and commas
  if (bare(typed) !== bare(mutation)) throw new Error(`page B's editor holds ${JSON.stringify(typed)}`);

  // A subscription is stored asynchronously and never acknowledged: execute the mutation until
  // page A shows a message it sent; then once more, and A must show exactly that one.
  let rounds = 0;
  for (;;) {
    rounds++;
    await execute(b);
    const sent = await parsed(b);
    if (!sent?.data?.sendMessage?.id) throw new Error(`the mutation failed: ${await result(b)}`);
    const seen = await a
      .waitForFunction(
        (id) => document.querySelector('.result-window .CodeMirror').CodeMirror.getValue().includes(id),
        sent.data.sendMessage.id,
        { timeout: 1000 },
      )
      .then(() => true, () => false);
    if (seen) break;
    if (rounds === 20) throw new Error('page A never showed a message page B sent');
  }
  emit({ kind: 'sync', rounds });

  await execute(b);
  const sent = await parsed(b);
  emit({ kind: 'sent', result: sent });
  await shot(b, 'graphiql-2-sender-mutation.png', 'page B: GraphiQL at /graphql after running the sendMessage mutation, with its result');
  await a.waitForFunction(
    (id) => document.querySelector('.result-window .CodeMirror').CodeMirror.getValue().includes(id),
    sent?.data?.sendMessage?.id ?? 'none',
    { timeout: 10000 },
  );
  emit({ kind: 'received', result: await parsed(a) });
  await shot(a, 'graphiql-3-subscriber-received.png', "page A: the subscription's result pane showing page B's message");
});
