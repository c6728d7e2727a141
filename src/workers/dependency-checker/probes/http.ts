import { z } from 'zod';
import { describeCause } from '../../../errors/index.js';
import { httpTarget, isHttpUrl } from '../../../runtime/http-target.js';
import { redactUrl } from '../../../runtime/logging.js';
import { findReferences } from '../../../runtime/references.js';
import { defineDependencyProbe, dependencySettings, ProbeFailure } from '../probe.js';

/** Largest body read for `bodyContains` / `bodyMatches`; a health body is small. */
const MAX_BODY_BYTES = 1024 * 1024;

const httpItem = z
  .strictObject({
    type: z.literal('http'),
    ...dependencySettings,
    /** http:// or https:// URL; may be a `${NAME}` reference. */
    url: z.string().min(1),
    /** @defaultValue `GET` */
    method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'OPTIONS']).optional(),
    /** Request headers; values may hold `${NAME}` references (e.g. a bearer token). */
    headers: z.record(z.string(), z.string()).optional(),
    /** Statuses that count as healthy. @defaultValue any 2xx */
    expectStatus: z.array(z.number().int().min(100).max(599)).min(1).optional(),
    /** The body must contain this text. */
    bodyContains: z.string().min(1).optional(),
    /** The body must match this regular expression (JavaScript syntax). */
    bodyMatches: z.string().min(1).refine(isRegExp, 'must be a valid regular expression').optional(),
  })
  .superRefine((item, context) => {
    if (findReferences(item.url).length === 0 && !isHttpUrl(item.url)) {
      context.addIssue({ code: 'custom', path: ['url'], message: 'must be an http:// or https:// URL' });
    }
  });

export type HttpDependency = z.infer<typeof httpItem>;

/** `http`: the URL answers with an expected status (default 2xx) and, optionally, body. */
export const httpProbe = defineDependencyProbe<HttpDependency>({
  type: 'http',
  item: httpItem,
  async probe(item, context) {
    const url = context.resolve(item.url);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(item.headers ?? {})) headers[name] = context.resolve(value);
    // Credentials in the URL go to an Authorization header: fetch refuses URLs that hold them.
    const target = httpTarget(url, headers);
    if (!target) {
      throw new ProbeFailure(`${redactUrl(url)} is not an http:// or https:// URL`, { retryable: false });
    }
    const shown = target.display;
    const method = item.method ?? 'GET';
    let response: Response;
    try {
      response = await fetch(target.url, {
        method,
        headers: target.headers,
        signal: context.signal,
        redirect: 'follow',
      });
    } catch (error) {
      const cause = error instanceof Error && error.cause !== undefined ? error.cause : error;
      throw new ProbeFailure(`cannot reach ${shown}: ${describeCause(cause)}`);
    }
    const statusOk = item.expectStatus
      ? item.expectStatus.includes(response.status)
      : response.status >= 200 && response.status < 300;
    if (!statusOk) {
      await response.body?.cancel().catch(() => {});
      const expected = item.expectStatus ? item.expectStatus.join(' or ') : '2xx';
      return { healthy: false, message: `HTTP ${response.status} from ${shown}, expected ${expected}` };
    }
    if (item.bodyContains === undefined && item.bodyMatches === undefined) {
      await response.body?.cancel().catch(() => {});
      return { healthy: true, message: `HTTP ${response.status}` };
    }
    const body = await readBody(response);
    if (item.bodyContains !== undefined && !body.includes(item.bodyContains)) {
      return {
        healthy: false,
        message: `HTTP ${response.status} but the body does not contain "${item.bodyContains}"`,
      };
    }
    if (item.bodyMatches !== undefined && !new RegExp(item.bodyMatches).test(body)) {
      return {
        healthy: false,
        message: `HTTP ${response.status} but the body does not match /${item.bodyMatches}/`,
      };
    }
    return { healthy: true, message: `HTTP ${response.status}, body as expected` };
  },
});

async function readBody(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size >= MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString('utf8');
}

function isRegExp(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}
