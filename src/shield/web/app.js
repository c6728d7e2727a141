// The Shield dashboard: routes of the page, the live stream, and the views it feeds.
import { api, askForToken, openStream, refreshSession, session, signOut } from './api.js';
import { DeploymentPage } from './deployment.js';
import { fill, h } from './dom.js';
import { EnvironmentsView } from './environments.js';
import { HistoryPanel } from './history.js';
import { LivePanel } from './live.js';
import { OperationsView } from './operations.js';

const view = document.getElementById('view');
const connection = document.getElementById('connection');
/** The latest record of every deployment seen, so views opened later start current. */
const records = new Map();
let current;

function setConnection(state) {
  connection.dataset.state = state;
  connection.textContent = state === 'live' ? 'live' : 'reconnecting…';
}

class DeploymentsView {
  constructor() {
    this.live = new LivePanel();
    this.history = new HistoryPanel();
    this.element = h('div', { class: 'deployments' }, this.live.element, this.history.element);
    for (const record of records.values()) this.live.update(record);
    this.history.load();
  }

  destroy() {
    this.live.destroy();
  }

  onDeployment(record) {
    this.live.update(record);
    this.history.update(record);
  }
}

function route() {
  current?.destroy?.();
  const path = location.pathname;
  const match = /^\/deployments\/([^/]+)$/.exec(path);
  let section = 'deployments';
  if (match) {
    current = new DeploymentPage(decodeURIComponent(match[1]));
  } else if (path === '/operations') {
    current = new OperationsView();
    section = 'operations';
  } else if (path === '/environments') {
    current = new EnvironmentsView();
    section = 'environments';
  } else {
    current = new DeploymentsView();
  }
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('current', a.dataset.nav === section);
  }
  fill(view, current.element);
  if (path === '/history') document.getElementById('history')?.scrollIntoView();
}

document.addEventListener('click', (event) => {
  const anchor = event.target.closest?.('a[data-link]');
  if (
    !anchor ||
    event.defaultPrevented ||
    event.button !== 0 ||
    event.metaKey ||
    event.ctrlKey ||
    event.shiftKey
  )
    return;
  event.preventDefault();
  if (anchor.getAttribute('href') !== location.pathname)
    history.pushState(null, '', anchor.getAttribute('href'));
  route();
  window.scrollTo(0, 0);
});
window.addEventListener('popstate', route);
// A new token may allow more (or less): show the actions it allows.
window.addEventListener('materi:token', async () => {
  await showNotices();
  if (current) route();
});

/** Offers to sign in with another token when the server wants one for actions and this session has none. */
function readOnlyNotice() {
  const button = h('button', { type: 'button' }, 'Sign in with another token');
  button.addEventListener('click', () => {
    askForToken('a deployer or admin token enables the actions');
  });
  return h(
    'p',
    { class: 'notice', id: 'read-only-notice' },
    'Read-only: approving, rolling back and cancelling need a deployer or admin token. ',
    button,
  );
}

/** `signed in as ana (deployer for staging)` and a button to sign out, in the header. */
function showIdentity() {
  const element = document.getElementById('identity');
  const identity = session.identity;
  element.hidden = !identity;
  if (!identity) return element.replaceChildren();
  const scope = identity.environments ? ` for ${identity.environments.join(', ')}` : '';
  const button = h('button', { type: 'button', id: 'sign-out' }, 'Sign out');
  button.addEventListener('click', () => signOut());
  element.replaceChildren(`signed in as ${identity.name} (${identity.role}${scope}) `, button);
}

async function showNotices() {
  const notices = document.getElementById('notices');
  notices.replaceChildren();
  try {
    const info = await refreshSession();
    showIdentity();
    if (session.writes === 'token' && !session.canWrite) notices.append(readOnlyNotice());
    if (info.auth?.writes === 'loopback') {
      notices.append(
        h(
          'p',
          { class: 'notice', id: 'loopback-notice' },
          'writes are open to this machine only: no token is configured',
        ),
      );
    }
  } catch (error) {
    notices.append(h('p', { class: 'notice error' }, `Cannot reach the server: ${error.message}`));
  }
}

async function start() {
  await showNotices();
  // Seed the records, then stream from the log position of that answer: nothing falls in between.
  let lastEventId;
  try {
    const page = await api('/api/deployments?limit=50');
    for (const record of page.deployments) records.set(record.id, record);
    lastEventId = page.lastEventId;
  } catch {
    // shown by the views when they load
  }
  route();
  openStream({
    lastEventId,
    onState: setConnection,
    onDeployment(record) {
      // A record computed from fewer events than one already shown is older: keep the newer.
      const known = records.get(record.id);
      if (known && known.eventCount > record.eventCount) return;
      records.set(record.id, record);
      current?.onDeployment?.(record);
    },
    onEvent(event) {
      current?.onEvent?.(event);
    },
  });
}

start();
