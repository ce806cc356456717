// The GraphQL-over-HTTP conformance audits of the `graphql-http` npm package, run against a server.
//
// Usage: node e2e/js/http-audit.mjs <http-url>
//
// Every audit of serverAudits runs, one after the other, and prints one line:
//   <id> <status> <name>
// where status is ok, notice (a failed MAY), warn (a failed SHOULD) or error (a failed MUST); a
// line that is not ok is followed by the reason and the response (status, content type, body).
// The last line is the total: "<n> ok, <n> notices, <n> warnings, <n> errors". The script exits 1
// when any audit is not ok: a notice or a warning fails it as much as an error does.
// e2e/http_audit_test.go runs it against `bootstrap dev`.
import { serverAudits } from 'graphql-http';

const [url] = process.argv.slice(2);
if (!url) {
  console.error('usage: node http-audit.mjs <http-url>');
  process.exit(2);
}
setTimeout(() => {
  console.error('timed out after 60s');
  process.exit(1);
}, 60_000).unref();

// describe renders a failed audit's response; the audit may already have read its body.
async function describe(res) {
  if (!res) return '(no response)';
  let body;
  try {
    body = await res.text();
  } catch {
    body = '(body already read)';
  }
  return `HTTP ${res.status}, content-type ${res.headers.get('content-type')}: ${body.slice(0, 300)}`;
}

const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const audit of serverAudits({ url })) {
  let result;
  try {
    result = await audit.fn();
  } catch (err) {
    // The audit itself broke (the server is unreachable, say): that is an error too.
    result = { id: audit.id, name: audit.name, status: 'error', reason: `fatal: ${err?.stack ?? err}` };
  }
  counts[result.status]++;
  console.log(`${result.id} ${result.status} ${result.name}`);
  if (result.status !== 'ok') {
    console.log(`    reason: ${result.reason}`);
    console.log(`    response: ${await describe(result.response)}`);
  }
}
console.log(`${counts.ok} ok, ${counts.notice} notices, ${counts.warn} warnings, ${counts.error} errors`);
process.exit(counts.notice + counts.warn + counts.error > 0 ? 1 : 0);
