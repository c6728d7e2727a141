import { ConfigError } from '../../../errors/index.js';
import { ChannelError } from './types.js';

/** A provider's answer. */
export interface HttpAnswer {
  status: number;
  /** The body as text, at most 64 KiB. */
  body: string;
}

export interface PostOptions {
  /** The channel's target (`slack:deploys`), for error messages. */
  target: string;
  /** The settings key the URL came from (`webhookUrl`), for error messages. */
  field: string;
  headers?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}

const MAX_BODY = 64 * 1024;

/**
 * Checks a resolved URL setting. The message names the channel and the key, never the value:
 * a webhook URL is a credential.
 */
export function parseHttpUrl(value: string, target: string, field: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${target}: ${field} is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${target}: ${field} must be an http(s) URL, not ${url.protocol}`);
  }
  return url;
}

/** The reason a request failed, without the URL (fetch errors may quote it). */
function describeFetchFailure(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  for (const candidate of [cause, error]) {
    const code = (candidate as { code?: unknown } | undefined)?.code;
    if (typeof code === 'string' && code !== '') return code;
  }
  // Without a code, undici's cause says what went wrong ("bad port"); keep it unless it quotes a URL.
  const text = cause instanceof Error ? cause.message.split('\n')[0]! : '';
  return text && !text.includes('://') && text.length < 120 ? text : 'connection failed';
}

/**
 * POSTs a body and returns the answer, whatever its status. Throws {@link ChannelError} when no
 * answer came (connection refused, timeout, abort) — with a message that never holds the URL.
 * Redirects are not followed: a webhook that redirects is misconfigured, and following it could
 * send the message (and its signature) somewhere unexpected.
 */
export async function postBody(
  url: URL,
  body: string,
  options: PostOptions & { contentType?: string },
): Promise<HttpAnswer> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': options.contentType ?? 'application/json',
        'user-agent': 'materi-notifier',
        ...options.headers,
      },
      body,
      redirect: 'manual',
      signal,
    });
  } catch (error) {
    if (timeout.aborted)
      throw new ChannelError(`${options.target}: no answer within ${options.timeoutMs} ms`);
    if (options.signal?.aborted) throw new ChannelError(`${options.target}: request aborted`);
    throw new ChannelError(`${options.target}: request failed: ${describeFetchFailure(error)}`);
  }
  let text = '';
  try {
    text = (await response.text()).slice(0, MAX_BODY);
  } catch {
    // The status is what decides; a body cut short only loses detail.
  }
  return { status: response.status, body: text };
}

/** The first line of a provider's answer, shortened, for error messages. */
export function answerExcerpt(body: string, max = 200): string {
  const line = body.trim().split('\n')[0] ?? '';
  return line.length > max ? `${line.slice(0, max)}…` : line;
}
