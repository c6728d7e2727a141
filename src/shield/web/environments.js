// Environments: what runs where (the release ledger), and a rollback of an environment to an
// earlier release it once ran.

import { actionResult } from './actions.js';
import { api, session } from './api.js';
import { ACTIVE, fill, formatTime, h, link, scrollable } from './dom.js';

const REFRESH_MS = 15_000;

const envPath = (row) =>
  `/api/environments/${encodeURIComponent(row.project)}/${encodeURIComponent(row.environment)}`;

export class EnvironmentsView {
  constructor() {
    this.body = h('tbody');
    this.message = h('p', { class: 'muted' });
    this.element = h(
      'div',
      { class: 'environments' },
      h(
        'section',
        { class: 'panel', id: 'environments' },
        h('h2', {}, 'Environments'),
        scrollable(
          h(
            'table',
            {},
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['Project', 'Environment', 'Version', 'Deployment', 'Since', 'Kind', 'Triggered by', ''].map(
                  (t) => h('th', {}, t),
                ),
              ),
            ),
            this.body,
          ),
        ),
        this.message,
      ),
    );
    this.load();
    this.timer = setInterval(() => this.load(), REFRESH_MS);
  }

  destroy() {
    clearInterval(this.timer);
    clearTimeout(this.soon);
  }

  /** A deployment that finished may have changed what runs where (one reload for a burst of them). */
  onDeployment(record) {
    if (ACTIVE.has(record.status) || this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      this.load();
    }, 500);
  }

  async load() {
    try {
      const rows = await api('/api/environments');
      // Rows with an open rollback form stay as they are: a refresh must not drop a choice.
      const open = new Map(
        [...this.body.querySelectorAll('tr.environment[data-open]')].map((tr) => [tr.dataset.key, tr]),
      );
      const next = [];
      for (const row of rows) {
        const key = `${row.project}\n${row.environment}`;
        const kept = open.get(key);
        if (kept) {
          next.push(kept, kept.nextElementSibling);
          continue;
        }
        next.push(this.row(row, key));
      }
      this.body.replaceChildren(...next.filter(Boolean));
      fill(this.message, rows.length === 0 ? 'No environment has a release yet.' : '');
    } catch (error) {
      fill(this.message, `Could not load the environments: ${error.message}`);
    }
  }

  row(row, key) {
    return h(
      'tr',
      {
        class: 'environment',
        'data-key': key,
        'data-project': row.project,
        'data-environment': row.environment,
      },
      h('td', {}, row.project),
      h('td', {}, row.environment),
      h('td', { class: 'version' }, row.version),
      h(
        'td',
        { class: 'mono' },
        link(`/deployments/${encodeURIComponent(row.deploymentId)}`, row.deploymentId),
      ),
      h('td', {}, formatTime(row.since)),
      h('td', {}, h('span', { class: `kind kind-${row.kind}` }, row.kind)),
      h('td', {}, row.triggeredBy || '–'),
      h('td', {}, session.canWrite ? this.rollbackButton(row) : null),
    );
  }

  rollbackButton(row) {
    const button = h('button', { type: 'button', class: 'action' }, 'Roll back…');
    button.addEventListener('click', () => {
      const tr = button.closest('tr');
      if (tr.dataset.open !== undefined) return;
      tr.dataset.open = '';
      tr.after(this.rollbackForm(row, tr));
    });
    return button;
  }

  /** The confirmation row: which release to go back to (default: the previous good one), then confirm. */
  rollbackForm(row, tr) {
    const { result, post } = actionResult();
    const target = h(
      'select',
      { name: 'to', 'aria-label': 'Roll back to' },
      h('option', { value: '' }, 'the previous good release'),
    );
    const confirm = h('button', { type: 'button', class: 'action armed' }, 'Confirm roll back');
    const close = h('button', { type: 'button' }, 'Close');
    const form = h(
      'tr',
      { class: 'rollback-form', 'data-key': tr.dataset.key },
      h(
        'td',
        { colspan: '8' },
        h(
          'div',
          { class: 'actions' },
          h('span', {}, `Roll back ${row.project} ${row.environment} from ${row.version} to `),
          target,
          confirm,
          close,
          result,
        ),
      ),
    );
    close.addEventListener('click', () => {
      form.remove();
      delete tr.dataset.open;
    });
    confirm.addEventListener('click', async () => {
      confirm.disabled = true;
      const body = target.value ? { to: target.value } : {};
      const answer = await post('rollback', `${envPath(row)}/rollback`, body);
      confirm.disabled = false;
      if (answer?.id) {
        result.append(
          ' ',
          link(`/deployments/${encodeURIComponent(answer.id)}`, answer.id),
          answer.version ? ` → ${answer.version}` : '',
        );
      }
    });
    this.loadTargets(row, target);
    return form;
  }

  /** Versions that once ran there, other than the current one, newest first. */
  async loadTargets(row, select) {
    try {
      const history = await api(`${envPath(row)}/history`);
      const seen = new Set([row.version]);
      for (const entry of history) {
        if (seen.has(entry.version)) continue;
        seen.add(entry.version);
        select.append(
          h(
            'option',
            { value: entry.version },
            `${entry.version} (${entry.kind}, since ${formatTime(entry.since)})`,
          ),
        );
      }
    } catch (error) {
      select.after(h('span', { class: 'error' }, `history unavailable: ${error.message}`));
    }
  }
}
