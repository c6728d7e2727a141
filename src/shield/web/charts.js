// Health charts drawn as inline SVG from the health samples of a service.
import { h, svg } from './dom.js';

const WIDTH = 520;
const HEIGHT = 170;
const PAD = { left: 48, right: 12, top: 14, bottom: 28 };
const BUCKETS = 12;

function frame(title, yLabel, maxX, maxY, formatY) {
  const chart = svg('svg', {
    class: 'health-chart',
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: 'img',
    'aria-label': title,
  });
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  chart.append(
    svg('title', {}, title),
    svg('line', {
      class: 'axis',
      x1: PAD.left,
      y1: PAD.top + plotH,
      x2: PAD.left + plotW,
      y2: PAD.top + plotH,
    }),
    svg('line', { class: 'axis', x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: PAD.top + plotH }),
    svg('text', { class: 'tick', x: PAD.left - 6, y: PAD.top + 4, 'text-anchor': 'end' }, formatY(maxY)),
    svg('text', { class: 'tick', x: PAD.left - 6, y: PAD.top + plotH, 'text-anchor': 'end' }, formatY(0)),
    svg('text', { class: 'tick', x: PAD.left, y: HEIGHT - 8 }, '0 s'),
    svg(
      'text',
      { class: 'tick', x: PAD.left + plotW, y: HEIGHT - 8, 'text-anchor': 'end' },
      `${(maxX / 1000).toFixed(1)} s`,
    ),
    svg(
      'text',
      { class: 'tick axis-label', x: PAD.left + plotW / 2, y: HEIGHT - 8, 'text-anchor': 'middle' },
      yLabel,
    ),
  );
  const x = (v) => PAD.left + (maxX === 0 ? 0 : (v / maxX) * plotW);
  const y = (v) => PAD.top + plotH - (maxY === 0 ? 0 : (v / maxY) * plotH);
  return { chart, x, y, plotW, plotH };
}

/** Response time of every probe over the window; failed probes marked. */
export function responseTimeChart(service) {
  const samples = [...service.samples].sort((a, b) => a.offsetMs - b.offsetMs);
  const maxX = Math.max(1, ...samples.map((s) => s.offsetMs));
  const maxY = Math.max(1, ...samples.map((s) => s.latencyMs));
  const { chart, x, y } = frame(
    `${service.service}: response time over the health window`,
    'response time (ms) over the window',
    maxX,
    maxY,
    (v) => `${Math.round(v)} ms`,
  );
  chart.classList.add('response-time');
  chart.append(
    svg('polyline', {
      class: 'latency-line',
      fill: 'none',
      points: samples.map((s) => `${x(s.offsetMs).toFixed(1)},${y(s.latencyMs).toFixed(1)}`).join(' '),
    }),
    ...samples.map((s) =>
      svg(
        'circle',
        {
          class: s.ok ? 'probe ok' : 'probe failed',
          cx: x(s.offsetMs).toFixed(1),
          cy: y(s.latencyMs).toFixed(1),
          r: s.ok ? 2 : 3.5,
        },
        svg(
          'title',
          {},
          `${s.endpoint} at ${(s.offsetMs / 1000).toFixed(1)} s: ${s.latencyMs} ms${s.ok ? '' : ' (failed)'}`,
        ),
      ),
    ),
  );
  return chart;
}

/** Share of failed probes per slice of the window. */
export function errorRateChart(service) {
  const samples = service.samples;
  const maxX = Math.max(1, ...samples.map((s) => s.offsetMs));
  const { chart, x, y, plotW } = frame(
    `${service.service}: error rate over the health window`,
    'error rate over the window',
    maxX,
    1,
    (v) => `${Math.round(v * 100)} %`,
  );
  chart.classList.add('error-rate');
  const width = plotW / BUCKETS;
  for (let i = 0; i < BUCKETS; i++) {
    const from = (i / BUCKETS) * maxX;
    const to = ((i + 1) / BUCKETS) * maxX;
    const inBucket = samples.filter(
      (s) => s.offsetMs >= from && (s.offsetMs < to || (i === BUCKETS - 1 && s.offsetMs <= to)),
    );
    if (inBucket.length === 0) continue;
    const rate = inBucket.filter((s) => !s.ok).length / inBucket.length;
    chart.append(
      svg(
        'rect',
        {
          class: rate > 0 ? 'error-bar failing' : 'error-bar',
          x: (x(from) + 1).toFixed(1),
          y: y(Math.max(rate, 0.01)).toFixed(1),
          width: Math.max(1, width - 2).toFixed(1),
          height: (y(0) - y(Math.max(rate, 0.01))).toFixed(1),
        },
        svg(
          'title',
          {},
          `${(from / 1000).toFixed(1)}–${(to / 1000).toFixed(1)} s: ${Math.round(rate * 100)} % of ${inBucket.length} probes failed`,
        ),
      ),
    );
  }
  return chart;
}

/** Both charts of a service, or a note when the monitor sent no samples. */
export function serviceCharts(service) {
  if (!service.samples || service.samples.length === 0) {
    return h('p', { class: 'muted' }, 'no probe samples were reported for this service');
  }
  return h('div', { class: 'charts' }, responseTimeChart(service), errorRateChart(service));
}
