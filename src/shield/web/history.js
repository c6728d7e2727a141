// History: every deployment, newest first, filtered by environment, service and status.
import { api } from './api.js';
import { badge, fill, formatDuration, formatTime, h, link, scrollable } from './dom.js';

const STATUSES = ['', 'PENDING', 'RUNNING', 'SUCCESS', 'FAILURE', 'ROLLED_BACK', 'CANCELLED'];

export class HistoryPanel {
  constructor() {
    this.filters = { environment: '', service: '', status: '' };
    this.environment = h('input', {
      name: 'environment',
      placeholder: 'environment',
      'aria-label': 'environment',
    });
    this.service = h('input', { name: 'service', placeholder: 'service', 'aria-label': 'service' });
    this.status = h(
      'select',
      { name: 'status', 'aria-label': 'status' },
      STATUSES.map((s) => h('option', { value: s }, s || 'any status')),
    );
    const form = h(
      'form',
      { class: 'filters', id: 'history-filters' },
      this.environment,
      this.service,
      this.status,
      h('button', { type: 'submit' }, 'Filter'),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.filters = {
        environment: this.environment.value.trim(),
        service: this.service.value.trim(),
        status: this.status.value,
      };
      this.load();
    });
    this.body = h('tbody');
    this.message = h('p', { class: 'muted' });
    this.more = h('button', { type: 'button', hidden: true }, 'Load more');
    this.more.addEventListener('click', () => this.load(this.cursor));
    this.element = h(
      'section',
      { class: 'panel', id: 'history' },
      h('h2', {}, 'History'),
      form,
      scrollable(
        h(
          'table',
          { class: 'history' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              [
                'Started',
                'Deployment',
                'Project',
                'Version',
                'Environment',
                'Services',
                'Status',
                'Duration',
              ].map((t) => h('th', {}, t)),
            ),
          ),
          this.body,
        ),
      ),
      this.message,
      this.more,
    );
  }

  query(cursor) {
    const params = new URLSearchParams({ limit: '25' });
    for (const [key, value] of Object.entries(this.filters)) if (value) params.set(key, value);
    if (cursor) params.set('cursor', cursor);
    return `/api/deployments?${params}`;
  }

  async load(cursor) {
    try {
      const page = await api(this.query(cursor));
      if (!cursor) this.body.replaceChildren();
      for (const record of page.deployments) this.body.append(this.row(record));
      this.cursor = page.nextCursor;
      this.more.hidden = !page.nextCursor;
      fill(this.message, this.body.children.length === 0 ? 'No deployment matches.' : '');
      return page;
    } catch (error) {
      fill(this.message, `Could not load the history: ${error.message}`);
      return undefined;
    }
  }

  matches(record) {
    const f = this.filters;
    return (
      (!f.environment || record.environment === f.environment) &&
      (!f.service || record.services.includes(f.service)) &&
      (!f.status || record.status === f.status)
    );
  }

  row(record) {
    return h(
      'tr',
      { 'data-deployment-id': record.id, 'data-started-at': record.startedAt ?? record.lastEventAt },
      h('td', {}, formatTime(record.startedAt)),
      h('td', {}, link(`/deployments/${encodeURIComponent(record.id)}`, record.id)),
      h('td', {}, record.project),
      h('td', {}, record.version),
      h('td', {}, record.environment),
      h('td', {}, record.services.join(', ')),
      h('td', {}, badge(record.status)),
      h('td', {}, formatDuration(record.durationMs)),
    );
  }

  /** A record changed live: update its row, or add it when it belongs on the first page. */
  update(record) {
    const existing = this.body.querySelector(`tr[data-deployment-id="${CSS.escape(record.id)}"]`);
    if (!this.matches(record)) {
      existing?.remove();
      return;
    }
    const row = this.row(record);
    if (existing) {
      existing.replaceWith(row);
      return;
    }
    const key = record.startedAt ?? record.lastEventAt;
    const later = [...this.body.children].find((r) => (r.dataset.startedAt ?? '') < key);
    if (later || !this.cursor) this.body.insertBefore(row, later ?? null);
    fill(this.message, '');
  }
}
