// The dev aid: sends a test announcement to the local runtime's invoke endpoint (Lambda's invoke
// API, as the runtime interface emulator serves it), as an EventBridge event of type
// chat.announcement, which is what `bootstrap publish --type chat.announcement` posts. Announcements
// are not a mutation: in production another service emits them.

export const announcementType = 'chat.announcement';

// sendAnnouncement posts the announcement and returns the event's id; it throws the runtime's
// answer when the function failed (a function error is answered with 200 and {errorMessage}).
export async function sendAnnouncement(invokeURL, { roomId, text, priority }) {
  const id = `demo-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const at = new Date().toISOString();
  const event = {
    version: '0',
    id,
    'detail-type': announcementType,
    source: 'lambdaws.demo',
    account: '000000000000',
    time: at,
    region: 'local',
    resources: [],
    detail: { id, roomId, text, priority, at },
  };
  const res = await fetch(invokeURL, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(event),
  });
  const answer = await res.text();
  let body = null;
  try {
    body = JSON.parse(answer);
  } catch {
    // not JSON: reported below
  }
  if (!res.ok || body === null) throw new Error(`the invoke endpoint answered ${res.status}: ${answer.slice(0, 200)}`);
  if (body.errorMessage) throw new Error(`the function failed: ${body.errorType ?? ''} ${body.errorMessage}`.trim());
  return id;
}

// publishCommand is the shell command that sends the same announcement from outside the page.
export function publishCommand(roomId) {
  const data = JSON.stringify({ id: 'a1', roomId, text: 'Closing in 5 minutes', priority: 5, at: '2026-01-01T12:00:00Z' });
  return `bootstrap publish --type ${announcementType} --data '${data.replaceAll("'", "'\\''")}'`;
}
