// The timeline of a deployment: one row per gate and stage, a bar from its start to its end
// (or to now while it runs), coloured by status.
import { formatDuration, h, statusClass } from './dom.js';

const GATE_STATUS = {
  PASSED: 'SUCCESS',
  WARNINGS: 'WARNING',
  FAILED: 'FAILURE',
  ALL_HEALTHY: 'SUCCESS',
  SOME_DEGRADED: 'WARNING',
  ALL_UNHEALTHY: 'FAILURE',
  HEALTHY: 'SUCCESS',
  DEGRADED: 'WARNING',
  UNHEALTHY: 'FAILURE',
  INCONCLUSIVE: 'WARNING',
};

function gateRow(name, kind, gate, verdict, running) {
  if (!gate) return undefined;
  let status = 'PENDING';
  if (verdict) status = GATE_STATUS[verdict] ?? 'FAILURE';
  else if (gate.requestedAt) status = running ? 'RUNNING' : 'CANCELLED';
  return {
    key: name,
    label: name,
    kind,
    status,
    from: gate.requestedAt,
    to: gate.completedAt,
    detail: verdict ?? (running ? 'waiting' : 'no result'),
  };
}

/** The rows of a deployment's timeline, in lifecycle order. */
export function timelineRows(record) {
  const running = record.status === 'RUNNING' || record.status === 'PENDING';
  const rows = [
    gateRow('validation', 'gate', record.validation, record.validation?.result, running),
    gateRow('dependencies', 'gate', record.dependencies, record.dependencies?.result, running),
    ...record.stages.map((stage) => ({
      key: `stage:${stage.stage}`,
      label: stage.stage,
      kind: 'stage',
      stage: stage.stage,
      status: stage.status,
      from: stage.startedAt,
      to: stage.finishedAt,
      detail: stage.error || stage.description || stage.status,
    })),
    gateRow('health', 'gate', record.health, record.health?.status, running),
    gateRow('bake', 'gate', record.bake, record.bake?.status, running),
  ];
  if (record.rollback) {
    rows.push({
      key: 'rollback',
      label: 'rollback',
      kind: 'rollback',
      status: record.rollback.status,
      from: record.rollback.initiatedAt,
      to: record.rollback.completedAt,
      detail: record.rollback.reason,
    });
  }
  return rows.filter(Boolean);
}

/** The Gantt chart of a deployment at time `now` (ms). */
export function renderGantt(record, now = Date.now()) {
  const rows = timelineRows(record);
  const start = Date.parse(record.startedAt ?? record.lastEventAt);
  const active = record.status === 'RUNNING' || record.status === 'PENDING';
  let end = record.finishedAt ? Date.parse(record.finishedAt) : active ? now : Date.parse(record.lastEventAt);
  for (const row of rows) {
    if (row.to) end = Math.max(end, Date.parse(row.to));
  }
  const span = Math.max(1000, end - start);
  const percent = (t) => Math.min(100, Math.max(0, ((t - start) / span) * 100));
  return h(
    'div',
    { class: 'gantt', 'data-deployment': record.id },
    rows.map((row) => {
      const from = row.from ? Date.parse(row.from) : undefined;
      const to = row.to ? Date.parse(row.to) : row.status === 'RUNNING' ? now : undefined;
      const track = h('div', { class: 'gantt-track' });
      if (from !== undefined) {
        const bar = h('div', {
          class: `gantt-bar ${statusClass(row.status)}`,
          'data-row': row.key,
          'data-status': row.status,
          title: `${row.label}: ${row.detail}${to === undefined ? '' : ` (${formatDuration(to - from)})`}`,
        });
        const left = percent(from);
        const width = Math.max(0.8, percent(to ?? from) - left);
        bar.style.left = `${left}%`;
        bar.style.width = `${width}%`;
        // The duration is written on bars wide enough for it; the title has it for the others.
        if (to !== undefined && width >= 8) {
          bar.append(h('span', { class: 'gantt-bar-label' }, formatDuration(to - from)));
        }
        track.append(bar);
      }
      return h(
        'div',
        { class: `gantt-row gantt-${row.kind}`, 'data-row': row.key, 'data-status': row.status },
        h('span', { class: 'gantt-label', title: row.detail }, row.label),
        track,
        h('span', { class: `gantt-status ${statusClass(row.status)}` }, row.status),
      );
    }),
    h('div', { class: 'gantt-axis' }, h('span', {}, '0 s'), h('span', {}, formatDuration(span))),
  );
}
