// Settings of the deployment that come from the environment of `make deploy`, resolved by
// serverless.yml as ${file(./serverless.settings.js):NAME}. Each checks its input and throws a
// message saying what to set, so that a deploy with a missing or wrong setting stops before it
// reaches AWS. e2e/deploy tests them through osls.
'use strict';

const env = (name) => (process.env[name] || '').trim();

// authMode is AUTH_MODE, which has no default: a deployment states whether it authenticates.
module.exports.authMode = () => {
  const mode = env('AUTH_MODE').toLowerCase();
  if (mode === '') {
    throw new Error(
      'AUTH_MODE is not set: deploy with AUTH_MODE=jwt (and AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE) ' +
        'to require tokens, or AUTH_MODE=none to accept every caller without authentication'
    );
  }
  if (mode !== 'none' && mode !== 'jwt') {
    throw new Error(`AUTH_MODE=${mode}: want none or jwt`);
  }
  if (mode === 'jwt' && !env('AUTH_JWKS_URL') && !env('AUTH_HS256_SECRET')) {
    throw new Error('AUTH_MODE is jwt: set AUTH_JWKS_URL (with AUTH_ISSUER and AUTH_AUDIENCE), the issuer the function trusts');
  }
  if (mode === 'jwt' && env('AUTH_JWKS_URL') && (!env('AUTH_ISSUER') || !env('AUTH_AUDIENCE'))) {
    throw new Error('AUTH_MODE is jwt with AUTH_JWKS_URL: set AUTH_ISSUER and AUTH_AUDIENCE too');
  }
  return mode;
};

// cors is the HTTP API's CorsConfiguration, from CORS_ORIGINS (comma-separated; "*" for any), as
// internal/cors answers it: the same methods, headers and max age. Unset: no CORS (false).
module.exports.cors = () => {
  const origins = env('CORS_ORIGINS')
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');
  if (origins.length === 0) {
    return false;
  }
  return {
    allowedOrigins: origins,
    allowedMethods: ['GET', 'POST'],
    allowedHeaders: ['Authorization', 'Content-Type', 'Accept'],
    maxAge: 600,
  };
};

// throttle is a stage's default route throttling, {rate, burst}, from <PREFIX>_THROTTLE_RATE
// (requests per second) and <PREFIX>_THROTTLE_BURST, defaulting to 1000 and 2000. API Gateway
// shares 10,000 requests per second (burst 5,000) between every API of the account and Region,
// @connections posts included: a stage's bound keeps one flood from taking all of it.
const throttle = (prefix) => {
  const num = (name, def) => {
    const v = env(`${prefix}_THROTTLE_${name}`);
    if (v === '') return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) {
      throw new Error(`${prefix}_THROTTLE_${name}=${v}: want a positive integer`);
    }
    return n;
  };
  const rate = num('RATE', 1000);
  const burst = num('BURST', 2000);
  return { ThrottlingRateLimit: rate, ThrottlingBurstLimit: burst };
};
module.exports.httpThrottle = () => throttle('HTTP');
module.exports.websocketThrottle = () => throttle('WEBSOCKET');
