// Calls to the Shield API and the live stream, with the bearer token kept in sessionStorage.

const TOKEN_KEY = 'materi.token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

/**
 * What the server says about this page's caller (`GET /api/info`): action buttons show only when
 * `canWrite` (the operator token, or any caller on loopback when the server has no token).
 */
export const session = { canWrite: false, writes: 'loopback' };

/** Asks the server again what the stored token allows. Returns the `/api/info` answer. */
export async function refreshSession() {
  const info = await api('/api/info');
  session.canWrite = info.caller?.canWrite === true;
  session.writes = info.auth?.writes ?? 'loopback';
  return info;
}

let tokenRequest;

/** Shows the token form and resolves once a token was entered. Concurrent callers share it. */
export function askForToken(reason) {
  if (tokenRequest) return tokenRequest;
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  document.getElementById('token-message').textContent = reason || '';
  form.hidden = false;
  input.focus();
  tokenRequest = new Promise((resolve) => {
    const submit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = '';
      form.hidden = true;
      form.removeEventListener('submit', submit);
      tokenRequest = undefined;
      resolve();
      // What the page may do depends on the token: the page asks the server again.
      window.dispatchEvent(new Event('materi:token'));
    };
    form.addEventListener('submit', submit);
  });
  return tokenRequest;
}

/** JSON call to the API; on 401 asks for a token and tries again. Throws ApiError otherwise. */
export async function api(path, options = {}) {
  for (;;) {
    const headers = { accept: 'application/json' };
    const token = storedToken();
    if (token) headers.authorization = `Bearer ${token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(path, {
      method: options.method ?? 'GET',
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    const data = await response.json().catch(() => ({}));
    if (response.status === 401) {
      await askForToken(data.error?.message ?? 'a token is needed');
      continue;
    }
    if (!response.ok) {
      throw new ApiError(response.status, data.error?.code, data.error?.message ?? response.statusText);
    }
    return data;
  }
}

/**
 * The live stream (SSE). Resumes after `lastEventId` on every reconnect, so nothing is missed;
 * when the server refuses the stream (401), asks for a token and reconnects.
 */
export function openStream({ lastEventId, onDeployment, onEvent, onState }) {
  let last = lastEventId;
  let source;
  let retryTimer;
  const connect = () => {
    const url = new URL('/api/stream', location.origin);
    if (last !== undefined && last !== null && last !== '')
      url.searchParams.set('last_event_id', String(last));
    const token = storedToken();
    if (token) url.searchParams.set('access_token', token);
    source = new EventSource(url);
    source.onopen = () => onState('live');
    source.addEventListener('deployment', (message) => {
      last = message.lastEventId || last;
      onDeployment(JSON.parse(message.data));
    });
    source.addEventListener('event', (message) => {
      last = message.lastEventId || last;
      onEvent(JSON.parse(message.data));
    });
    source.onerror = async () => {
      onState('reconnecting');
      if (source.readyState !== EventSource.CLOSED) return; // the browser retries by itself
      source.close();
      try {
        await api('/api/deployments?limit=1'); // asks for a token if that is the problem
      } catch {
        // the server is down: retry below
      }
      clearTimeout(retryTimer);
      retryTimer = setTimeout(connect, 2000);
    };
  };
  connect();
  return () => {
    clearTimeout(retryTimer);
    source?.close();
  };
}
