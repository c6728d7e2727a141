// Live deployments: running ones and those finished in the last half hour, each with its stage
// timeline and the gate it waits on, ticking every second.
import { approvalBanner, deploymentActions } from './actions.js';
import { ACTIVE, badge, fill, formatDuration, formatTime, h, link } from './dom.js';
import { renderGantt } from './gantt.js';

const RECENT_MS = 30 * 60_000;

/** `42 s`, `3 min 5 s`: how long a gate has been waited on. */
export function formatWait(ms) {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  return seconds < 120 ? `${seconds} s` : formatDuration(ms);
}

export function blockedText(record, now) {
  if (!record.blockedOn) return '';
  return `blocked on: ${record.blockedOn.group}, ${formatWait(now - Date.parse(record.blockedOn.since))}`;
}

export function deploymentTitle(record) {
  return [
    link(`/deployments/${encodeURIComponent(record.id)}`, record.project || record.id),
    ' ',
    h('span', { class: 'version' }, record.version || '?'),
    ' → ',
    h('span', { class: 'environment' }, record.environment || '?'),
  ];
}

function isLive(record, now) {
  if (ACTIVE.has(record.status)) return true;
  const finished = Date.parse(record.finishedAt ?? record.lastEventAt);
  return now - finished < RECENT_MS;
}

export class LivePanel {
  constructor() {
    this.records = new Map();
    this.cards = new Map();
    this.list = h('div', { class: 'live-list', id: 'live-list' });
    this.empty = h('p', { class: 'muted' }, 'No deployment is running or finished in the last 30 minutes.');
    this.element = h(
      'section',
      { class: 'panel', id: 'live' },
      h('h2', {}, 'Live deployments'),
      this.empty,
      this.list,
    );
    this.timer = setInterval(() => this.tick(), 1000);
  }

  destroy() {
    clearInterval(this.timer);
  }

  update(record) {
    this.records.set(record.id, record);
    const now = Date.now();
    const existing = this.cards.get(record.id);
    if (!isLive(record, now)) {
      existing?.remove();
      this.cards.delete(record.id);
    } else {
      const card = this.card(record, now);
      if (existing) existing.replaceWith(card);
      else this.insert(card, record);
      this.cards.set(record.id, card);
    }
    this.empty.hidden = this.cards.size > 0;
  }

  insert(card, record) {
    const key = record.startedAt ?? record.lastEventAt;
    const later = [...this.list.children].find((c) => (c.dataset.startedAt ?? '') < key);
    this.list.insertBefore(card, later ?? null);
  }

  card(record, now) {
    const blocked = h('p', { class: 'blocked' }, blockedText(record, now));
    blocked.hidden = !record.blockedOn;
    return h(
      'article',
      {
        class: 'deployment-card',
        'data-deployment-id': record.id,
        'data-status': record.status,
        'data-started-at': record.startedAt ?? record.lastEventAt,
      },
      h(
        'header',
        {},
        h('h3', {}, deploymentTitle(record)),
        badge(record.status),
        h('span', { class: 'phase' }, record.phase),
      ),
      blocked,
      approvalBanner(record),
      record.failure ? h('p', { class: 'failure' }, `failed: ${record.failure.reason}`) : null,
      renderGantt(record, now),
      h(
        'footer',
        {},
        h('span', { class: 'muted' }, `started ${formatTime(record.startedAt)}`),
        h('span', { class: 'muted' }, `services: ${record.services.join(', ') || '–'}`),
        record.durationMs !== null
          ? h('span', { class: 'muted' }, `took ${formatDuration(record.durationMs)}`)
          : null,
        deploymentActions(record),
      ),
    );
  }

  /** Advances the clocks of active deployments without rebuilding their cards. */
  tick() {
    const now = Date.now();
    for (const [id, card] of this.cards) {
      const record = this.records.get(id);
      if (!record || !ACTIVE.has(record.status)) continue;
      const blocked = card.querySelector('.blocked');
      if (blocked) fill(blocked, blockedText(record, now));
      card.querySelector('.gantt')?.replaceWith(renderGantt(record, now));
    }
  }
}
