// Operations: dead-lettered events with replay, and the consumer groups' health.
import { api } from './api.js';
import { fill, formatDuration, formatTime, h, scrollable } from './dom.js';

const REFRESH_MS = 5000;

export class OperationsView {
  constructor() {
    this.dlqBody = h('tbody');
    this.dlqMessage = h('p', { class: 'muted' });
    this.groupsBody = h('tbody');
    this.processesBody = h('tbody');
    this.workersMessage = h('p', { class: 'muted' });
    const refresh = h('button', { type: 'button' }, 'Refresh');
    refresh.addEventListener('click', () => this.refresh());
    this.element = h(
      'div',
      { class: 'operations' },
      h(
        'section',
        { class: 'panel', id: 'dlq' },
        h('h2', {}, 'Dead letters ', refresh),
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
                ['Id', 'Group', 'Event', 'Deployment', 'Attempts', 'Error', 'Last failure', 'Status', ''].map(
                  (t) => h('th', {}, t),
                ),
              ),
            ),
            this.dlqBody,
          ),
        ),
        this.dlqMessage,
      ),
      h(
        'section',
        { class: 'panel', id: 'workers' },
        h('h2', {}, 'Worker groups'),
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
                ['Group', 'Lag', 'Pending', 'Oldest pending', 'Consumers', 'Dead letters'].map((t) =>
                  h('th', {}, t),
                ),
              ),
            ),
            this.groupsBody,
          ),
        ),
        h('h3', {}, 'Processes'),
        scrollable(
          h(
            'table',
            { class: 'processes' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ['Process', 'Role', 'Groups', 'Started', 'Last beat', 'State'].map((t) => h('th', {}, t)),
              ),
            ),
            this.processesBody,
          ),
        ),
        this.workersMessage,
      ),
    );
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  destroy() {
    clearInterval(this.timer);
  }

  async refresh() {
    await Promise.all([this.loadDlq(), this.loadWorkers()]);
  }

  async loadDlq() {
    try {
      const { failedEvents } = await api('/api/dlq');
      this.dlqBody.replaceChildren(...failedEvents.map((row) => this.dlqRow(row)));
      fill(this.dlqMessage, failedEvents.length === 0 ? 'No dead-lettered events.' : '');
    } catch (error) {
      fill(this.dlqMessage, `Could not load dead letters: ${error.message}`);
    }
  }

  dlqRow(row) {
    const result = h('span', { class: 'action-result' });
    const replay = h('button', { type: 'button', class: 'action' }, 'Replay');
    replay.addEventListener('click', async () => {
      replay.disabled = true;
      try {
        const { replayed } = await api(`/api/dlq/${encodeURIComponent(row.id)}/replay`, {
          method: 'POST',
          body: {},
        });
        fill(result, `replayed to ${replayed.group}`);
        setTimeout(() => this.loadDlq(), 500);
      } catch (error) {
        fill(result, `replay failed: ${error.message}`);
        result.classList.add('error');
        replay.disabled = false;
      }
    });
    return h(
      'tr',
      { 'data-failed-event': row.id },
      h('td', { class: 'mono' }, row.id),
      h('td', {}, row.group),
      h('td', {}, row.eventType || '–'),
      h('td', {}, row.deploymentId || '–'),
      h('td', {}, String(row.attempts)),
      h('td', { class: 'error-text wrap' }, row.error),
      h('td', { class: 'wrap' }, formatTime(row.lastFailedAt)),
      h('td', {}, row.status),
      h('td', { class: 'wrap' }, row.status === 'purged' ? null : replay, result),
    );
  }

  async loadWorkers() {
    try {
      const report = await api('/api/workers');
      this.groupsBody.replaceChildren(
        ...report.groups.map((g) => {
          const alive = g.consumers.filter((c) => c.state === 'alive').length;
          const dead = g.consumers.filter((c) => c.state === 'dead').length;
          return h(
            'tr',
            { 'data-group': g.group },
            h('td', {}, g.group),
            h('td', {}, String(g.lag)),
            h('td', {}, String(g.pending)),
            h('td', {}, g.oldestPendingAgeMs === null ? '–' : formatDuration(g.oldestPendingAgeMs)),
            h('td', {}, `${alive} alive${dead ? `, ${dead} dead` : ''}`),
            h('td', {}, String(g.deadLetterDepth)),
          );
        }),
      );
      this.processesBody.replaceChildren(
        ...report.processes.map((p) =>
          h(
            'tr',
            {},
            h('td', {}, `${p.host} pid ${p.pid}`),
            h('td', {}, p.role),
            h('td', { class: 'wrap' }, p.groups.join(', ')),
            h('td', {}, formatTime(p.startedAt)),
            h('td', {}, formatTime(p.beatAt)),
            h('td', {}, p.alive ? 'alive' : 'dead'),
          ),
        ),
      );
      fill(this.workersMessage, report.groups.length === 0 ? 'No consumer groups yet.' : '');
    } catch (error) {
      fill(this.workersMessage, `Could not load workers: ${error.message}`);
    }
  }
}
