// The endpoints a page talks to. The server writes them into the page's
// <script id="lambdaws-config" type="application/json"> element as {"httpURL", "webSocketURL",
// "invokePath"}; an empty or missing URL means the page's own server: "graphql" relative to the
// page for HTTP, and the same URL with ws: or wss: (after the page's scheme) for the WebSocket.
// invokePath is set by the local runtime only: its invoke endpoint on the page's host (invokeURL),
// null elsewhere.
export function readConfig(doc = document, loc = window.location) {
  let cfg = {};
  try {
    cfg = JSON.parse(doc.getElementById('lambdaws-config')?.textContent || '{}') || {};
  } catch {
    cfg = {};
  }
  const httpURL = new URL(cfg.httpURL || 'graphql', loc.href);
  let webSocketURL;
  if (cfg.webSocketURL) {
    webSocketURL = new URL(cfg.webSocketURL, loc.href);
  } else {
    webSocketURL = new URL(httpURL.href);
    webSocketURL.protocol = httpURL.protocol === 'https:' ? 'wss:' : 'ws:';
  }
  const invokeURL = typeof cfg.invokePath === 'string' && cfg.invokePath.startsWith('/') ? new URL(cfg.invokePath, loc.origin).href : null;
  return { httpURL: httpURL.href, webSocketURL: webSocketURL.href, invokeURL };
}

// wsOptions are the graphql-ws client options both pages share. API Gateway closes a connection
// idle for 10 minutes, so the client pings every 5; it closes every connection after 2 hours (the
// client sees 1000 or 1001), and the client reconnects and resubscribes without limit.
export const wsOptions = {
  keepAlive: 5 * 60 * 1000,
  retryAttempts: Infinity,
};
