// The chat demo in two tabs: tab A picks a room by its URL, tab B by the Room field; A sends one
// message with Enter and one with the Send button, edits the first and deletes the second, and B
// follows each change live; a third tab opened afterwards loads the room's history.
//
// Records (besides browser.mjs's):
//   {"kind":"labels","page":...,"labels":[{"label","visible","input"}]}  the form fields' labels
//   {"kind":"step","step":...,"page":...,"messages":[{"author","text","edited"}]}
//                                        what a tab lists after each step, in order
//   {"kind":"sync","rounds":n}
import { baseURL, emit, run, shot, watch } from './browser.mjs';

const room = `demo-${Math.random().toString(36).slice(2, 8)}`;

// messages returns what a tab lists, in order.
const messages = (page) =>
  page.$$eval('#messages > li[data-id]', (lis) =>
    lis.map((li) => ({
      author: li.querySelector('.author').textContent,
      text: li.querySelector('.text').textContent,
      edited: !li.querySelector('.edited').hidden,
    })),
  );

const hasText = (page, text) => page.locator('#messages > li[data-id] .text', { hasText: text });

async function step(name, page) {
  emit({ kind: 'step', step: name, page: page.name, messages: await messages(page) });
}

async function open(ctx, name, hash, author) {
  const page = watch(await ctx.newPage(), name);
  page.name = name;
  await page.goto(`${baseURL}/demo${hash}`);
  await page.getByLabel('Author', { exact: true }).fill(author);
  await page.waitForSelector('#status[data-state="live"]');
  return page;
}

// labels records, for each field, its <label>'s text, whether the label is visible, and the id of
// the input it labels (found the way assistive technology finds it).
async function labels(page) {
  const out = [];
  for (const label of ['Room', 'Author', 'Message']) {
    const input = page.getByLabel(label, { exact: true });
    out.push({
      label,
      visible: await page.locator('label', { hasText: new RegExp(`^${label}$`) }).isVisible(),
      input: (await input.count()) === 1 ? await input.getAttribute('id') : `${await input.count()} inputs`,
    });
  }
  emit({ kind: 'labels', page: page.name, labels: out });
}

await run(async (browser) => {
  const ctx = await browser.newContext({ viewport: { width: 900, height: 640 } });
  const a = await open(ctx, 'A', `#${room}`, 'ann');
  const b = await open(ctx, 'B', '', 'bob');
  await labels(b);
  // B picks the room with the Room field (Enter submits it).
  await b.getByLabel('Room', { exact: true }).fill(room);
  await b.getByLabel('Room', { exact: true }).press('Enter');
  await b.waitForSelector(`#room-title:text("Room ${room}")`);
  await b.waitForSelector('#status[data-state="live"]');

  // Subscriptions are stored asynchronously and never acknowledged: each tab sends until the
  // other shows one of its messages, so both tabs' subscriptions are in place.
  let rounds = 0;
  for (const [from, to] of [
    [a, b],
    [b, a],
  ]) {
    for (let n = 1; ; n++) {
      rounds++;
      const text = `sync ${from.name}→${to.name} ${n}`;
      await from.getByLabel('Message', { exact: true }).fill(text);
      await from.getByRole('button', { name: 'Send' }).click();
      await hasText(from, text).waitFor();
      if (await hasText(to, text).waitFor({ timeout: 1000 }).then(() => true, () => false)) break;
      if (n === 20) throw new Error(`tab ${to.name} never showed a message tab ${from.name} sent`);
    }
  }
  emit({ kind: 'sync', rounds });

  // Send with Enter.
  const message = a.getByLabel('Message', { exact: true });
  await message.fill('Hello, sent with Enter');
  await message.press('Enter');
  await hasText(b, 'Hello, sent with Enter').waitFor();
  await a.waitForFunction(() => document.getElementById('message').value === '', null, { timeout: 5000 }); // cleared once sent
  await step('sent with Enter', b);

  // Send with the button.
  await message.fill('Hello, sent with the Send button');
  await a.getByRole('button', { name: 'Send' }).click();
  await hasText(b, 'Hello, sent with the Send button').waitFor();
  await step('sent with the button', b);
  await shot(a, 'demo-1-tab-a-sent.png', 'tab A after sending one message with Enter and one with the Send button');
  await shot(b, 'demo-2-tab-b-received.png', "tab B (same room, picked with the Room field) showing tab A's two messages live");

  // Edit the first: Edit, then the labelled field, Enter saves.
  const first = a.locator('#messages > li[data-id]', { hasText: 'Hello, sent with Enter' });
  await first.getByRole('button', { name: 'Edit' }).click();
  const edit = first.getByLabel('Edit message', { exact: true });
  await edit.fill('Hello, sent with Enter and edited');
  await shot(a, 'demo-3-tab-a-editing.png', 'tab A editing its first message in the labelled "Edit message" field');
  await edit.press('Enter');
  await hasText(b, 'Hello, sent with Enter and edited').waitFor();
  await b.locator('#messages > li[data-id]', { hasText: 'Hello, sent with Enter and edited' }).locator('.edited:visible').waitFor();
  await step('edited', b);
  await shot(b, 'demo-4-tab-b-after-edit.png', 'tab B showing the edited text, marked (edited), live');

  // Delete the second.
  await a.locator('#messages > li[data-id]', { hasText: 'Hello, sent with the Send button' }).getByRole('button', { name: 'Delete' }).click();
  await hasText(b, 'Hello, sent with the Send button').waitFor({ state: 'detached' });
  await hasText(a, 'Hello, sent with the Send button').waitFor({ state: 'detached' });
  await step('deleted', b);
  await step('deleted', a);
  await shot(b, 'demo-5-tab-b-after-delete.png', "tab B after tab A deleted its second message: it is gone");

  // A new tab loads the room's last messages.
  const c = await open(ctx, 'C', `#${room}`, 'cat');
  await hasText(c, 'Hello, sent with Enter and edited').waitFor();
  await step('history', c);
  await shot(c, 'demo-6-tab-c-history.png', "a third tab opened on the room afterwards, showing the room's history");
});
