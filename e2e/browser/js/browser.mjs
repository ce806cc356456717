// What the browser scenarios share: Chromium through playwright-core, one JSON line per record on
// stdout (read by e2e/browser's Go tests), screenshots, and a watch on each page's errors.
//
// Usage of a scenario: node e2e/browser/js/<scenario>.mjs <base-url> <artifacts-dir> <chromium>
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const [baseURL, artifacts, executablePath] = process.argv.slice(2);
const scenarioName = path.basename(process.argv[1], '.mjs');
if (!baseURL || !artifacts || !executablePath) {
  console.error('usage: node <scenario>.mjs <base-url> <artifacts-dir> <chromium>');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

export function emit(record) {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

// launch starts headless Chromium with a fresh profile (playwright gives each launch a new
// temporary --user-data-dir) and nothing that reaches the network on its own.
export function launch() {
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

// watch records every error a page logs or throws (a CSP violation, a failed request, an
// exception) as {"kind":"page-error"}; the Go test fails on any.
export function watch(page, name) {
  page.on('console', (m) => {
    if (m.type() === 'error') emit({ kind: 'page-error', page: name, message: m.text() });
  });
  page.on('pageerror', (err) => emit({ kind: 'page-error', page: name, message: String(err) }));
  return page;
}

// shot saves a screenshot of the page (the viewport; the whole page with fullPage) as
// <artifacts>/<file> and records what it shows.
export async function shot(page, file, shows, { fullPage = false } = {}) {
  await page.screenshot({ path: path.join(artifacts, file), fullPage });
  emit({ kind: 'screenshot', file, shows });
}

// run runs the scenario, records {"kind":"fail"} and exits 1 when it throws, and always closes
// the browser.
export async function run(scenario) {
  const browser = await launch();
  try {
    await scenario(browser);
    emit({ kind: 'done' });
  } catch (err) {
    emit({ kind: 'fail', message: String(err?.stack ?? err) });
    process.exitCode = 1;
    let n = 0;
    for (const ctx of browser.contexts()) {
      for (const page of ctx.pages()) {
        n++;
        await shot(page, `${scenarioName}-failed-page-${n}.png`, `page ${n} when the scenario failed`).catch(() => {});
      }
    }
  } finally {
    await browser.close();
  }
}
