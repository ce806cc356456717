// The chat demo's filters and announcements in two tabs on one room. Tab A narrows what it
// receives (only messages from ann, announcements with priority ≥ 3); tab B keeps no filter. B
// sends messages as ann and as bob: A lists ann's alone, B both, and A's socket never carries
// bob's. Announcements arrive from outside the page: one with priority 5 sent with `bootstrap
// publish` reaches both tabs, one with priority 1 sent with B's dev-aid form (the invoke endpoint)
// reaches B only. Then A asks for a filter the server refuses (101 authors) and shows the server's
// message; clearing the filters subscribes again and A receives bob's messages.
//
// Needs BOOTSTRAP, the bootstrap binary, for `bootstrap publish`.
//
// Records (besides browser.mjs's):
//   {"kind":"labels","page":...,"labels":[{"label","visible","input","want"}]}  each new control's label
//   {"kind":"hint","page":...,"text":...,"devAid":bool}  the line that says how to send an announcement
//   {"kind":"step","step":...,"page":...,"messages":[...],"announcements":[{"text","priority"}]}
//   {"kind":"frames","page":"A","sent":[...],"received":[...],"marks":[applied, refusing, cleared]}
//       every frame A's sockets sent and received, as JSON; sent[applied:] are those sent once A
//       applied its filters, sent[refusing:] once it asked for the refused one, sent[cleared:] once
//       it cleared them
//   {"kind":"refused","page":"A","text":...}  what A shows when the server refused its filter
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { baseURL, emit, run, shot, watch } from './browser.mjs';

const bootstrap = process.env.BOOTSTRAP;
if (!bootstrap) throw new Error('BOOTSTRAP (the bootstrap binary) is not set');
const room = `filters-${Math.random().toString(36).slice(2, 8)}`;
const invokeURL = `${baseURL}/2015-03-31/functions/function/invocations`;

// publish sends an announcement to the room with `bootstrap publish`, as the page's hint says.
async function publish(text, priority) {
  const data = JSON.stringify({ id: `a-${Math.random().toString(36).slice(2)}`, roomId: room, text, priority, at: new Date().toISOString() });
  await promisify(execFile)(bootstrap, ['publish', '--type', 'chat.announcement', '--data', data, '--url', invokeURL]);
}

const messages = (page) =>
  page.$$eval('#messages > li[data-id]', (lis) =>
    lis.map((li) => ({ author: li.querySelector('.author').textContent, text: li.querySelector('.text').textContent, edited: false })),
  );
const announcements = (page) =>
  page.$$eval('#announcements > li[data-id]', (lis) =>
    lis.map((li) => ({ text: li.querySelector('.text').textContent, priority: Number(li.dataset.priority) })),
  );
const hasText = (page, text) => page.locator('#messages > li[data-id] .text', { hasText: text });
const hasAnnouncement = (page, text) => page.locator('#announcements > li[data-id] .text', { hasText: text });
const shows = (locator, timeout = 1000) => locator.waitFor({ timeout }).then(() => true, () => false);

// subscribedSince returns the ids of the subscriptions a page started after it had sent mark frames.
const subscribedSince = (page, mark) =>
  page.frames.sent
    .slice(mark)
    .map((raw) => JSON.parse(raw))
    .filter((f) => f.type === 'subscribe')
    .map((f) => f.id);

// deliveredOn waits up to a second for a result holding text on one of the page's subscriptions
// started after mark: a tab that reloads its history after subscribing lists messages sent before
// its subscription was in place, so only what its socket received proves the subscription.
async function deliveredOn(page, mark, text) {
  for (const deadline = Date.now() + 1000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    const ids = subscribedSince(page, mark);
    const found = page.frames.received.some((raw) => {
      const f = JSON.parse(raw);
      return f.type === 'next' && ids.includes(f.id) && raw.includes(text);
    });
    if (found) return true;
  }
  return false;
}

async function step(name, page) {
  emit({ kind: 'step', step: name, page: page.name, messages: await messages(page), announcements: await announcements(page) });
}

// frames records what a page's sockets send and receive (every socket: a reconnect opens another).
function frames(page) {
  const f = { sent: [], received: [] };
  page.on('websocket', (ws) => {
    ws.on('framesent', (e) => f.sent.push(String(e.payload)));
    ws.on('framereceived', (e) => f.received.push(String(e.payload)));
  });
  return f;
}

async function open(ctx, name) {
  const page = watch(await ctx.newPage(), name);
  page.name = name;
  page.frames = frames(page);
  await page.goto(`${baseURL}/demo#${room}`);
  await page.waitForSelector('#status[data-state="live"]');
  return page;
}

async function send(page, author, text) {
  await page.getByLabel('Author', { exact: true }).fill(author);
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.getByRole('button', { name: 'Send' }).click();
  await hasText(page, text).waitFor();
}

// until repeats act(n) until done() holds: subscriptions are stored asynchronously and never
// acknowledged, so a sender repeats until the receiver shows that its subscription is in place.
async function until(what, act, done) {
  for (let n = 1; n <= 20; n++) {
    await act(n);
    if (await done(n)) return n;
  }
  throw new Error(`never: ${what}`);
}

async function labels(page) {
  const out = [];
  for (const [label, want] of [
    ['Only messages from', 'filter-authors'],
    ['Only messages containing', 'filter-text'],
    ['Announcements with priority ≥', 'filter-priority'],
    ['Announcement text', 'announce-text'],
    ['Priority', 'announce-priority'],
  ]) {
    const input = page.getByLabel(label, { exact: true });
    const n = await input.count();
    out.push({
      label,
      want,
      visible: await page.locator('label').filter({ hasText: new RegExp(`^${label}$`) }).isVisible(),
      input: n === 1 ? await input.getAttribute('id') : `${n} inputs`,
    });
  }
  emit({ kind: 'labels', page: page.name, labels: out });
}

await run(async (browser) => {
  const ctx = await browser.newContext({ viewport: { width: 900, height: 900 } });
  const a = await open(ctx, 'A');
  const b = await open(ctx, 'B');
  await labels(b);
  emit({
    kind: 'hint',
    page: 'B',
    text: await b.locator('#publish-command').locator('..').textContent(),
    devAid: await b.locator('#announce-form').isVisible(),
  });

  // Both tabs' subscriptions in place: messages each way, and an announcement.
  for (const [from, to] of [
    [a, b],
    [b, a],
  ]) {
    await until(
      `tab ${to.name} shows a message of tab ${from.name}`,
      (n) => send(from, from === a ? 'ann' : 'bob', `sync ${from.name}→${to.name} ${n}`),
      (n) => shows(hasText(to, `sync ${from.name}→${to.name} ${n}`)),
    );
  }
  await until(
    'both tabs show an announcement',
    (n) => publish(`sync announcement ${n}`, 5),
    async (n) => (await shows(hasAnnouncement(a, `sync announcement ${n}`))) && (await shows(hasAnnouncement(b, `sync announcement ${n}`))),
  );

  // A narrows: only ann's messages, announcements with priority ≥ 3.
  const mark = a.frames.sent.length;
  await a.getByLabel('Only messages from', { exact: true }).fill('ann');
  await a.getByLabel('Announcements with priority ≥', { exact: true }).fill('3');
  await a.getByRole('button', { name: 'Apply filters' }).click();
  await a.locator('#filter-summary', { hasText: 'Receiving messages from ann and announcements with priority ≥ 3.' }).waitFor();
  await until(
    "tab A's filtered message subscription is in place",
    (n) => send(b, 'ann', `sync filtered ${n}`),
    (n) => deliveredOn(a, mark, `sync filtered ${n}`),
  );
  await until(
    "tab A's filtered announcement subscription is in place",
    (n) => publish(`sync filtered announcement ${n}`, 5),
    (n) => shows(hasAnnouncement(a, `sync filtered announcement ${n}`)),
  );

  // B, unfiltered, sends as ann and as bob; ann's last, so once A shows it, bob's would have come.
  await send(b, 'ann', 'from ann, first');
  await send(b, 'bob', 'from bob');
  await send(b, 'ann', 'from ann, last');
  await hasText(a, 'from ann, last').waitFor();

  // Announcements: priority 1 with B's dev-aid form (the invoke endpoint), then priority 5 with
  // bootstrap publish; each is delivered before it is acknowledged, so once A shows the second,
  // the first would have come.
  await b.getByLabel('Announcement text', { exact: true }).fill('low priority: only unfiltered tabs');
  await b.getByLabel('Priority', { exact: true }).fill('1');
  await b.getByRole('button', { name: 'Publish test announcement' }).click();
  await b.locator('#announce-status[data-state="sent"]', { hasText: '(priority 1)' }).waitFor();
  await publish('high priority: every tab', 5);
  await hasAnnouncement(a, 'high priority: every tab').waitFor();
  await hasAnnouncement(b, 'high priority: every tab').waitFor();
  await hasAnnouncement(b, 'low priority: only unfiltered tabs').waitFor();
  await step('filtered', a);
  await step('unfiltered', b);
  await shot(a, 'demo-filters-1-tab-a-filtered.png', "tab A filtered to ann's messages and announcements with priority ≥ 3: bob's message and the priority 1 announcement are absent", { fullPage: true });
  await shot(b, 'demo-filters-2-tab-b-unfiltered.png', "tab B without filters: ann's and bob's messages, both announcements (priority 5 in red, priority 1 in amber), the dev-aid form after sending the priority 1 one", { fullPage: true });

  // A filter the server refuses: 101 authors, over the 100 in/notIn values a filter may hold.
  const refusing = a.frames.sent.length;
  await a.getByLabel('Only messages from', { exact: true }).fill(Array.from({ length: 101 }, (_, i) => `author${i}`).join(', '));
  await a.getByRole('button', { name: 'Apply filters' }).click();
  const refused = a.locator('#filter-error:visible');
  await refused.waitFor();
  emit({ kind: 'refused', page: 'A', text: await refused.textContent() });
  await shot(a, 'demo-filters-3-tab-a-refused.png', "tab A after asking for 101 authors: the server's refusal shown under the filters");

  // Clear: A subscribes again without filters and receives bob's messages.
  const cleared = a.frames.sent.length;
  await a.getByRole('button', { name: 'Clear' }).click();
  await refused.waitFor({ state: 'hidden' });
  await until(
    'tab A receives bob after clearing its filters',
    (n) => send(b, 'bob', `from bob, after clearing ${n}`),
    async (n) => (await deliveredOn(a, cleared, `from bob, after clearing ${n}`)) && (await shows(hasText(a, `from bob, after clearing ${n}`))),
  );
  await step('cleared', a);
  emit({ kind: 'frames', page: 'A', sent: a.frames.sent, received: a.frames.received, marks: [mark, refusing, cleared] });
});
