// One deployment: facts, timeline, check results, health charts, rollback, notifications and
// every event, updated live.
import { approvalBanner, deploymentActions } from './actions.js';
import { api } from './api.js';
import { serviceCharts } from './charts.js';
import { ACTIVE, badge, externalLink, fill, formatDuration, formatTime, h, link, scrollable } from './dom.js';
import { renderGantt } from './gantt.js';
import { blockedText, deploymentTitle } from './live.js';

function table(headers, rows) {
  return scrollable(
    h(
      'table',
      {},
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          headers.map((t) => h('th', {}, t)),
        ),
      ),
      h('tbody', {}, rows),
    ),
  );
}

function facts(pairs) {
  return h(
    'dl',
    { class: 'facts' },
    pairs
      .filter(([, value]) => value !== undefined && value !== null && value !== '')
      .map(([term, value]) => [h('dt', {}, term), h('dd', {}, value)]),
  );
}

function section(id, title, ...content) {
  return h('section', { class: 'panel', id }, h('h2', {}, title), ...content);
}

/**
 * Whether the failure box already says `text`: the orchestrator builds a failure's reason from the
 * gate's own message (`health gate: <the monitor's reason>`), and the rollback repeats the reason,
 * so without this check a page prints one sentence three or four times.
 */
function saidByFailure(record, text) {
  return Boolean(text && record.failure?.reason.includes(text));
}

function gateFacts(gate) {
  return facts([
    ['requested', formatTime(gate.requestedAt)],
    ['completed', gate.completedAt ? formatTime(gate.completedAt) : 'waiting'],
    ['took', gate.durationMs === null ? null : formatDuration(gate.durationMs)],
    ['execution', gate.executionStatus],
    ['message', gate.message],
  ]);
}

export class DeploymentPage {
  constructor(id) {
    this.id = id;
    this.events = new Map();
    this.element = h(
      'div',
      { class: 'deployment-page', 'data-deployment-id': id },
      h('p', { class: 'muted' }, 'Loading…'),
    );
    this.timer = setInterval(() => this.tick(), 1000);
    this.load();
  }

  destroy() {
    clearInterval(this.timer);
  }

  async load() {
    try {
      const { deployment, timeline } = await api(`/api/deployments/${encodeURIComponent(this.id)}`);
      for (const event of timeline) this.events.set(event.id, event);
      // A live update may have arrived while this answer was on its way: keep the newer record.
      if (!this.record || deployment.eventCount >= this.record.eventCount) this.record = deployment;
      this.render();
    } catch (error) {
      fill(
        this.element,
        h(
          'p',
          { class: 'error' },
          error.status === 404 ? `No deployment "${this.id}".` : `Could not load: ${error.message}`,
        ),
        link('/', 'Back to deployments'),
      );
    }
  }

  onDeployment(record) {
    if (record.id !== this.id) return;
    this.record = record;
    this.render();
  }

  onEvent(event) {
    if (event.deploymentId !== this.id || this.events.has(event.id)) return;
    this.events.set(event.id, event);
    if (this.record) this.renderTimeline();
  }

  tick() {
    if (!this.record || !ACTIVE.has(this.record.status)) return;
    const now = Date.now();
    this.element.querySelector('.gantt')?.replaceWith(renderGantt(this.record, now));
    const blocked = this.element.querySelector('.blocked');
    if (blocked) fill(blocked, blockedText(this.record, now));
  }

  render() {
    const r = this.record;
    const now = Date.now();
    const blocked = h('p', { class: 'blocked' }, blockedText(r, now));
    blocked.hidden = !r.blockedOn;
    this.timeline = h('ol', { class: 'timeline' });
    fill(
      this.element,
      h('p', {}, link('/', '← deployments')),
      h(
        'header',
        { class: 'page-header' },
        h('h1', {}, deploymentTitle(r)),
        badge(r.status),
        h('span', { class: 'phase' }, r.phase),
      ),
      blocked,
      approvalBanner(r),
      r.failure
        ? h(
            'div',
            { class: 'failure-box' },
            h('strong', {}, 'Failed: '),
            r.failure.reason,
            r.failure.details && !saidByFailure(r, r.failure.details) ? h('p', {}, r.failure.details) : null,
          )
        : null,
      r.freezeOverride
        ? h(
            'div',
            { class: 'freeze-override' },
            h('strong', {}, 'Freeze overridden '),
            `by ${r.freezeOverride.by}: ${r.freezeOverride.window} — reason: ${r.freezeOverride.reason}`,
          )
        : null,
      deploymentActions(r),
      facts([
        ['deployment', r.id],
        ['strategy', r.strategy],
        ['services', r.services.join(', ')],
        ['planned stages', r.plannedStages.join(' → ')],
        ['kind', r.kind === 'rollback' ? 'rollback to an earlier release' : null],
        ['triggered by', r.triggeredBy],
        ['previous version', r.previousVersion],
        ['correlation id', r.correlationId],
        ['started', formatTime(r.startedAt)],
        ['finished', r.finishedAt ? formatTime(r.finishedAt) : null],
        ['duration', r.durationMs === null ? null : formatDuration(r.durationMs)],
      ]),
      section('stages', 'Timeline', renderGantt(r, now), this.stagesTable(r)),
      this.validationSection(r),
      this.dependenciesSection(r),
      this.healthSection(r, 'health', 'Health gate', r.health),
      this.healthSection(r, 'bake', 'Bake period', r.bake),
      this.approvalsSection(r),
      this.rollbackSection(r),
      this.notificationsSection(r),
      section('events', `Events`, this.timeline),
    );
    this.renderTimeline();
  }

  stagesTable(r) {
    return table(
      ['Stage', 'Description', 'Provider', 'Services', 'Status', 'Started', 'Duration', 'Artifacts', 'Error'],
      r.stages.map((s) =>
        h(
          'tr',
          { 'data-stage': s.stage },
          h('td', {}, s.stage),
          h('td', {}, s.description),
          h('td', {}, s.provider),
          h('td', {}, s.services.join(', ')),
          h('td', {}, badge(s.status)),
          h('td', {}, formatTime(s.startedAt)),
          h('td', {}, formatDuration(s.durationMs)),
          h(
            'td',
            {},
            s.artifacts.map((a) =>
              h('div', {}, `${a.name}: `, a.kind === 'url' ? externalLink(a.value) : a.value),
            ),
          ),
          h('td', { class: 'error-text' }, s.error ?? ''),
        ),
      ),
    );
  }

  validationSection(r) {
    if (!r.validation) return null;
    const v = r.validation;
    return section(
      'validation',
      'Validation',
      h('p', {}, 'result: ', badge(v.result ?? 'RUNNING')),
      gateFacts(v),
      table(
        ['Check', 'Kind', 'Status', 'Message', 'Took'],
        v.checks.map((c) =>
          h(
            'tr',
            {},
            h('td', {}, c.name),
            h('td', {}, c.kind),
            h('td', {}, badge(c.status)),
            h('td', {}, c.message),
            h('td', {}, formatDuration(c.durationMs)),
          ),
        ),
      ),
    );
  }

  dependenciesSection(r) {
    if (!r.dependencies) return null;
    const d = r.dependencies;
    return section(
      'dependencies',
      'Dependencies',
      h('p', {}, 'result: ', badge(d.result ?? 'RUNNING')),
      gateFacts(d),
      table(
        ['Dependency', 'Type', 'Service', 'Healthy', 'Critical', 'Latency', 'Attempts', 'Message'],
        d.dependencies.map((dep) =>
          h(
            'tr',
            {},
            h('td', {}, dep.name),
            h('td', {}, dep.type),
            h('td', {}, dep.service),
            h('td', {}, badge(dep.healthy ? 'HEALTHY' : 'UNHEALTHY')),
            h('td', {}, dep.critical ? 'yes' : 'no'),
            h('td', {}, formatDuration(dep.latencyMs)),
            h('td', {}, String(dep.attempts)),
            h('td', {}, dep.message),
          ),
        ),
      ),
    );
  }

  healthSection(r, id, title, health) {
    if (!health) return null;
    const reason = health.reason && !saidByFailure(r, health.reason) ? ` ${health.reason}` : '';
    return section(
      id,
      title,
      h('p', {}, 'verdict: ', badge(health.status ?? 'RUNNING'), reason),
      gateFacts(health),
      health.rollbackRecommended ? h('p', { class: 'failure' }, 'the monitor recommends rolling back') : null,
      health.services.map((s) =>
        h(
          'div',
          { class: 'service-health', 'data-service': s.service },
          h('h3', {}, s.service, ' ', badge(s.status)),
          facts([
            ['p50', `${s.responseTimeP50Ms} ms`],
            ['p95', `${s.responseTimeP95Ms} ms`],
            ['max', `${s.responseTimeMaxMs} ms`],
            ['error rate', `${(s.errorRate * 100).toFixed(1)} %`],
            ['probes', String(s.sampleCount)],
            ['metrics flowing', s.metricsFlowing ? 'yes' : 'no'],
            ['message', s.message],
          ]),
          serviceCharts(s),
        ),
      ),
    );
  }

  approvalsSection(r) {
    const approvals = r.approvals ?? [];
    if (approvals.length === 0) return null;
    return section(
      'approvals',
      'Approvals',
      table(
        ['Gate', 'Approvers', 'Reason', 'Requested', 'Deadline', 'Outcome', 'By', 'Comment', 'Answered'],
        approvals.map((a) =>
          h(
            'tr',
            { 'data-gate': a.gate },
            h('td', {}, a.gate),
            h('td', {}, a.approvers || 'any operator'),
            h('td', {}, a.reason),
            h('td', {}, formatTime(a.requestedAt)),
            h('td', {}, formatTime(a.deadline)),
            h('td', {}, badge(a.outcome ?? (r.waitingFor?.eventId === a.eventId ? 'WAITING' : '–'))),
            h('td', {}, a.by ?? ''),
            h('td', {}, a.comment ?? ''),
            h('td', {}, a.answeredAt ? formatTime(a.answeredAt) : ''),
          ),
        ),
      ),
    );
  }

  rollbackSection(r) {
    if (!r.rollback) return null;
    const rb = r.rollback;
    return section(
      'rollback',
      'Rollback',
      h('p', {}, 'status: ', badge(rb.status)),
      facts([
        ['reason', saidByFailure(r, rb.reason) ? 'the failure above' : rb.reason],
        ['target version', rb.targetVersion],
        ['stages', rb.stages.join(' → ')],
        ['initiated', formatTime(rb.initiatedAt)],
        ['completed', rb.completedAt ? formatTime(rb.completedAt) : 'running'],
        ['restored version', rb.restoredVersion],
        ['took', rb.durationMs === null ? null : formatDuration(rb.durationMs)],
        ['services restored', rb.rolledBackServices.join(', ')],
        ['error', rb.error],
      ]),
    );
  }

  notificationsSection(r) {
    if (r.notifications.length === 0) return null;
    return section(
      'notifications',
      'Notifications',
      table(
        ['Sent', 'Channel', 'Target', 'About', 'Outcome', 'Message'],
        r.notifications.map((n) =>
          h(
            'tr',
            {},
            h('td', {}, formatTime(n.at)),
            h('td', {}, n.channel),
            h('td', {}, n.target),
            h('td', {}, n.notifiedEventType),
            h('td', {}, badge(n.outcome)),
            h('td', {}, n.message),
          ),
        ),
      ),
    );
  }

  renderTimeline() {
    const events = [...this.events.values()].sort((a, b) =>
      a.time === b.time ? a.seq - b.seq : a.time < b.time ? -1 : 1,
    );
    const start = Date.parse(this.record.startedAt ?? events[0]?.time ?? '');
    const ignored = new Map((this.record.ignoredEvents ?? []).map((i) => [i.eventId, i.reason]));
    this.timeline.replaceChildren(
      ...events.map((e) =>
        h(
          'li',
          { 'data-event-id': e.id, 'data-type': e.type, class: ignored.has(e.id) ? 'ignored' : null },
          h(
            'span',
            { class: 'offset mono' },
            Number.isNaN(start) ? '' : `+${formatDuration(Date.parse(e.time) - start)}`,
          ),
          h('span', { class: 'event-type' }, e.type),
          h('span', { class: 'muted' }, `${e.source} · ${e.priority}`),
          ignored.has(e.id) ? h('span', { class: 'ignored-reason' }, `ignored: ${ignored.get(e.id)}`) : null,
          h('details', {}, h('summary', {}, 'data'), h('pre', {}, JSON.stringify(e.data, null, 2))),
        ),
      ),
    );
  }
}
