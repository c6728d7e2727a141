import { findReferences, type Lookup } from '../../runtime/references.js';

/**
 * Keeps secret values out of what the notifier publishes. Channels already write messages
 * without URLs or keys; this is the second line of defence for text that comes from elsewhere
 * (a library's error, a provider echoing what it got).
 *
 * @module
 */

/** Settings keys whose literal values are secrets (a Slack webhook URL is itself a credential). */
const SECRET_KEYS = new Set(['webhookUrl', 'routingKey', 'secret', 'pass', 'password', 'url', 'headers']);

/** Shorter values would blank ordinary words; no real credential is this short. */
const MIN_SECRET_LENGTH = 6;

function collectLiterals(value: unknown, underSecretKey: boolean, out: Set<string>): void {
  if (typeof value === 'string') {
    if (underSecretKey) {
      for (const part of value.split(/\$\{[A-Za-z_][A-Za-z0-9_]*\}/)) out.add(part);
    }
  } else if (Array.isArray(value)) {
    for (const item of value) collectLiterals(item, underSecretKey, out);
  } else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value))
      collectLiterals(item, underSecretKey || SECRET_KEYS.has(key), out);
  }
}

/** Variants of a URL that an error message might quote: without its scheme, or just its path and query. */
function urlVariants(value: string): string[] {
  try {
    const url = new URL(value);
    const tail = `${url.pathname}${url.search}`;
    return tail.length > 1 ? [`${url.host}${tail}`, tail] : [];
  } catch {
    return [];
  }
}

/**
 * The secret values a channel's settings hold: what each `${NAME}` resolves to, and literals under
 * secret keys (webhookUrl, routingKey, secret, pass, url, headers).
 */
export function secretValues(settings: unknown, lookup: Lookup): string[] {
  const values = new Set<string>();
  for (const name of findReferences(settings)) {
    const value = lookup(name);
    if (value !== undefined) values.add(value);
  }
  collectLiterals(settings, false, values);
  for (const value of [...values]) for (const variant of urlVariants(value)) values.add(variant);
  return [...values].filter((v) => v.length >= MIN_SECRET_LENGTH).sort((a, b) => b.length - a.length);
}

/** Replaces every occurrence of a secret value in a text by `[redacted]`. */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join('[redacted]');
  return out;
}
