import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request a fake provider received. */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body, as signed by the sender. */
  body: string;
  json: unknown;
  /** What the provider's documented contract says is wrong with it (empty when valid). */
  problems: string[];
}

export interface Answer {
  status: number;
  body: string;
  contentType?: string;
}

/** A local HTTP server standing in for a hosted API. */
export interface FakeProvider {
  /** Base URL, `http://127.0.0.1:<port>`. */
  url: string;
  requests: ReceivedRequest[];
  /** The next `count` requests get this answer instead of the normal one (after being recorded). */
  failNext(count: number, answer: Answer): void;
  /** Answers every request this many milliseconds late (0: at once). */
  delay(ms: number): void;
  close(): Promise<void>;
}

type Validator = (request: Omit<ReceivedRequest, 'problems'>) => string[];

/**
 * Starts a provider on 127.0.0.1:0. Each request is recorded with the problems `validate` finds;
 * an invalid request gets `invalid(problems)`, a valid one `valid(request)`.
 */
export async function startProvider(
  validate: Validator,
  valid: (request: ReceivedRequest) => Answer,
  invalid: (problems: string[]) => Answer,
): Promise<FakeProvider> {
  const requests: ReceivedRequest[] = [];
  let failures: { count: number; answer: Answer } | undefined;
  let delayMs = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const base = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body, json };
      const request: ReceivedRequest = { ...base, problems: validate(base) };
      requests.push(request);
      let answer: Answer;
      if (failures && failures.count > 0) {
        failures.count--;
        answer = failures.answer;
      } else {
        answer = request.problems.length > 0 ? invalid(request.problems) : valid(request);
      }
      setTimeout(() => {
        res.writeHead(answer.status, { 'content-type': answer.contentType ?? 'text/plain' });
        res.end(answer.body);
      }, delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    failNext(count, answer) {
      failures = { count, answer };
    },
    delay(ms) {
      delayMs = ms;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function checkText(value: unknown, at: string, type: 'plain_text' | 'mrkdwn' | 'any', max: number): string[] {
  if (!isObject(value)) return [`${at}: expected a text object`];
  const problems: string[] = [];
  if (type === 'any' ? !['plain_text', 'mrkdwn'].includes(value.type as string) : value.type !== type) {
    problems.push(`${at}.type: expected ${type}, got ${String(value.type)}`);
  }
  if (typeof value.text !== 'string' || value.text.length === 0)
    problems.push(`${at}.text: expected a non-empty string`);
  else if (value.text.length > max) problems.push(`${at}.text: longer than ${max}`);
  if (value.emoji !== undefined && value.type !== 'plain_text')
    problems.push(`${at}.emoji: only for plain_text`);
  return problems;
}

function isUrl(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * Slack incoming webhook checks (https://api.slack.com/messaging/webhooks and the Block Kit
 * reference): POST JSON to /services/…, `text` a string, `blocks` at most 50 blocks of known
 * types with their documented text types and length limits.
 */
export const validateSlack: Validator = ({ method, path, headers, json }) => {
  const problems: string[] = [];
  if (method !== 'POST') problems.push(`method ${method}`);
  if (!path.startsWith('/services/')) problems.push(`path ${path}`);
  if (!String(headers['content-type']).startsWith('application/json'))
    problems.push('content-type is not JSON');
  if (!isObject(json)) return [...problems, 'body is not a JSON object'];
  if (typeof json.text !== 'string' || json.text === '') problems.push('text: expected a non-empty string');
  if (json.blocks === undefined) return problems;
  if (!Array.isArray(json.blocks) || json.blocks.length === 0 || json.blocks.length > 50) {
    return [...problems, 'blocks: expected 1 to 50 blocks'];
  }
  json.blocks.forEach((block: unknown, i: number) => {
    const at = `blocks[${i}]`;
    if (!isObject(block)) {
      problems.push(`${at}: not an object`);
      return;
    }
    switch (block.type) {
      case 'header':
        problems.push(...checkText(block.text, `${at}.text`, 'plain_text', 150));
        break;
      case 'section': {
        if (block.text === undefined && block.fields === undefined)
          problems.push(`${at}: needs text or fields`);
        if (block.text !== undefined) problems.push(...checkText(block.text, `${at}.text`, 'any', 3000));
        if (block.fields !== undefined) {
          if (!Array.isArray(block.fields) || block.fields.length > 10)
            problems.push(`${at}.fields: at most 10`);
          else
            block.fields.forEach((f: unknown, j: number) => {
              problems.push(...checkText(f, `${at}.fields[${j}]`, 'any', 2000));
            });
        }
        break;
      }
      case 'actions': {
        if (!Array.isArray(block.elements) || block.elements.length === 0 || block.elements.length > 25) {
          problems.push(`${at}.elements: expected 1 to 25 elements`);
          break;
        }
        block.elements.forEach((e: unknown, j: number) => {
          const el = `${at}.elements[${j}]`;
          if (!isObject(e) || e.type !== 'button') {
            problems.push(`${el}: expected a button`);
            return;
          }
          problems.push(...checkText(e.text, `${el}.text`, 'plain_text', 75));
          if (e.url !== undefined && (!isUrl(e.url) || String(e.url).length > 3000))
            problems.push(`${el}.url: not a URL`);
          if (e.style !== undefined && !['primary', 'danger'].includes(e.style as string))
            problems.push(`${el}.style`);
          if (e.action_id !== undefined && (typeof e.action_id !== 'string' || e.action_id.length > 255)) {
            problems.push(`${el}.action_id`);
          }
        });
        break;
      }
      case 'context':
        if (!Array.isArray(block.elements) || block.elements.length === 0 || block.elements.length > 10) {
          problems.push(`${at}.elements: expected 1 to 10 elements`);
        } else {
          block.elements.forEach((e: unknown, j: number) => {
            problems.push(...checkText(e, `${at}.elements[${j}]`, 'any', 3000));
          });
        }
        break;
      case 'divider':
        break;
      default:
        problems.push(`${at}.type: unknown block type ${String(block.type)}`);
    }
  });
  return problems;
};

/** Starts a Slack incoming webhook: 200 `ok`, or 400 `invalid_blocks` / `invalid_payload` as Slack answers. */
export function startSlack(): Promise<FakeProvider> {
  return startProvider(
    validateSlack,
    () => ({ status: 200, body: 'ok' }),
    (problems) => ({
      status: 400,
      body: problems.some((p) => p.startsWith('blocks')) ? 'invalid_blocks' : 'invalid_payload',
    }),
  );
}

const PD_SEVERITIES = ['critical', 'error', 'warning', 'info'];

/**
 * PagerDuty Events API v2 checks (https://developer.pagerduty.com/api-reference/368ae3d938c9e-send-an-event-to-pager-duty):
 * POST /v2/enqueue, JSON, a 32-character routing key, event_action, dedup_key up to 255
 * characters; a trigger has payload.summary (≤1024), source and severity, optional component,
 * group, class, custom_details (object), timestamp (ISO 8601) and links [{href, text}].
 */
export const validatePagerDuty: Validator = ({ method, path, headers, json }) => {
  const problems: string[] = [];
  if (method !== 'POST') problems.push(`method ${method}`);
  if (path !== '/v2/enqueue') problems.push(`path ${path}`);
  if (!String(headers['content-type']).startsWith('application/json'))
    problems.push('content-type is not JSON');
  if (!isObject(json)) return [...problems, 'body is not a JSON object'];
  if (typeof json.routing_key !== 'string' || json.routing_key.length !== 32) {
    problems.push("'routing_key' must be a 32 character string");
  }
  if (!['trigger', 'acknowledge', 'resolve'].includes(json.event_action as string))
    problems.push("'event_action' is invalid");
  if (json.dedup_key !== undefined && (typeof json.dedup_key !== 'string' || json.dedup_key.length > 255)) {
    problems.push("'dedup_key' must be a string of at most 255 characters");
  }
  if (json.event_action !== 'trigger' && typeof json.dedup_key !== 'string')
    problems.push("'dedup_key' is required");
  if (json.event_action === 'trigger') {
    const p = json.payload;
    if (!isObject(p)) return [...problems, "'payload' is required"];
    if (typeof p.summary !== 'string' || p.summary === '' || p.summary.length > 1024)
      problems.push("'payload.summary' is invalid");
    if (typeof p.source !== 'string' || p.source === '') problems.push("'payload.source' is required");
    if (!PD_SEVERITIES.includes(p.severity as string)) problems.push("'payload.severity' is invalid");
    for (const key of ['component', 'group', 'class']) {
      if (p[key] !== undefined && typeof p[key] !== 'string')
        problems.push(`'payload.${key}' must be a string`);
    }
    if (p.custom_details !== undefined && !isObject(p.custom_details))
      problems.push("'payload.custom_details' must be an object");
    if (p.timestamp !== undefined && Number.isNaN(Date.parse(String(p.timestamp))))
      problems.push("'payload.timestamp' is invalid");
    if (json.links !== undefined) {
      if (!Array.isArray(json.links)) problems.push("'links' must be an array");
      else
        json.links.forEach((l: unknown, i: number) => {
          if (!isObject(l) || !isUrl(l.href) || (l.text !== undefined && typeof l.text !== 'string')) {
            problems.push(`'links[${i}]' is invalid`);
          }
        });
    }
  }
  const known = [
    'routing_key',
    'event_action',
    'dedup_key',
    'payload',
    'links',
    'images',
    'client',
    'client_url',
  ];
  for (const key of Object.keys(json)) if (!known.includes(key)) problems.push(`unknown field '${key}'`);
  return problems;
};

/** Starts a PagerDuty events endpoint: 202 `{status:'success', dedup_key}`, or 400 `invalid event`. */
export function startPagerDuty(): Promise<FakeProvider> {
  return startProvider(
    validatePagerDuty,
    (request) => {
      const body = request.json as { dedup_key?: string };
      return {
        status: 202,
        contentType: 'application/json',
        body: JSON.stringify({
          status: 'success',
          message: 'Event processed',
          dedup_key: body.dedup_key ?? 'generated-dedup-key',
        }),
      };
    },
    (problems) => ({
      status: 400,
      contentType: 'application/json',
      body: JSON.stringify({ status: 'invalid event', message: 'Event object is invalid', errors: problems }),
    }),
  );
}

/** Starts a plain webhook receiver that accepts any POST with 204 (checks are the test's). */
export function startWebhookReceiver(): Promise<FakeProvider> {
  return startProvider(
    ({ method }) => (method === 'POST' ? [] : [`method ${method}`]),
    () => ({ status: 204, body: '' }),
    (problems) => ({ status: 405, body: problems.join('; ') }),
  );
}

/** Starts a Slack-compatible status webhook: `{ text }` only, one line. */
export function startStatusReceiver(): Promise<FakeProvider> {
  return startProvider(
    ({ method, json }) => {
      const problems: string[] = [];
      if (method !== 'POST') problems.push(`method ${method}`);
      if (!isObject(json) || typeof json.text !== 'string' || json.text === '')
        problems.push('text: expected a non-empty string');
      else if (json.text.includes('\n')) problems.push('text: expected one line');
      return problems;
    },
    () => ({ status: 200, body: 'ok' }),
    () => ({ status: 400, body: 'invalid_payload' }),
  );
}
