// Calls to the Shield API and the live stream. The page never keeps a token: it signs in once
// (`POST /api/session`), and the server's HttpOnly session cookie goes with every request.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * What the server says about this page's caller (`GET /api/info`): action buttons show only when
 * `canWrite` (a deployer or admin session, or any caller on loopback when the server has no token);
 * `identity` is the signed-in token (name, role, environments), if any.
 */
export const session = { canWrite: false, writes: 'loopback', identity: undefined };

/** Asks the server again what this page's session allows. Returns the `/api/info` answer. */
export async function refreshSession() {
  const info = await api('/api/info');
  session.canWrite = info.caller?.canWrite === true;
  session.writes = info.auth?.writes ?? 'loopback';
  session.identity = info.caller?.identity;
  return info;
}

/** Ends the session (the server clears its cookie); the page then asks again what it may do. */
export async function signOut() {
  await fetch('/api/session', { method: 'DELETE' });
  window.dispatchEvent(new Event('materi:token'));
}

let tokenRequest;

/**
 * Shows the sign-in form and resolves once the server accepted a token (it answers with a session
 * cookie; the token itself is not kept). Concurrent callers share it.
 */
export function askForToken(reason) {
  if (tokenRequest) return tokenRequest;
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  document.getElementById('token-message').textContent = reason || '';
  form.hidden = false;
  input.focus();
  tokenRequest = new Promise((resolve) => {
    const submit = async (event) => {
      event.preventDefault();
      const response = await fetch('/api/session', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ token: input.value.trim() }),
      });
      if (!response.ok) {
        const data = await response.json().catch(() => ({}));
        document.getElementById('token-message').textContent =
          data.error?.message ?? `sign-in failed (${response.status})`;
        input.select();
        return;
      }
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

/** JSON call to the API; on 401 asks to sign in and tries again. Throws ApiError otherwise. */
export async function api(path, options = {}) {
  for (;;) {
    const headers = { accept: 'application/json' };
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
 * when the server refuses the stream (401), asks to sign in and reconnects. EventSource sends the
 * session cookie (it cannot set headers, and a token in the URL would end up in logs).
 */
export function openStream({ lastEventId, onDeployment, onEvent, onState }) {
  let last = lastEventId;
  let source;
  let retryTimer;
  const connect = () => {
    const url = new URL('/api/stream', location.origin);
    if (last !== undefined && last !== null && last !== '')
      url.searchParams.set('last_event_id', String(last));
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
        await api('/api/deployments?limit=1'); // asks to sign in if that is the problem
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
