import { ConfigError } from '../errors/index.js';

/**
 * `${NAME}` references in plan values and worker settings.
 *
 * Secrets never travel in events: a plan keeps `${DATABASE_URL}` as written, and the process that
 * uses the value (a worker checking a database, the orchestrator calling a provider) resolves it
 * from its own environment at the moment of use. Only non-secret values (`${VERSION}`,
 * `${ENVIRONMENT}`, `--var` values) are expanded when a plan is loaded.
 *
 * @module
 */

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export type Lookup = (name: string) => string | undefined;

/** Names referenced anywhere in a value (strings, arrays, objects), without duplicates. */
export function findReferences(value: unknown): string[] {
  const names = new Set<string>();
  visitStrings(value, (text) => {
    for (const match of text.matchAll(REFERENCE)) names.add(match[1]!);
  });
  return [...names];
}

export interface ExpandOptions {
  /** What to do with a name the lookup does not know. @defaultValue `error` */
  missing?: 'error' | 'keep';
  /** Where the value came from, for error messages (e.g. `plan.yaml: services.api.image`). */
  where?: string;
}

/**
 * Replaces `${NAME}` references in every string of a value (deeply, returning a copy). Throws
 * {@link ConfigError} naming the variable — never its value — when one is missing and
 * `missing` is `error`.
 */
export function expandReferences<T>(value: T, lookup: Lookup, options: ExpandOptions = {}): T {
  return mapStrings(value, (text, path) =>
    text.replace(REFERENCE, (whole, name: string) => {
      const resolved = lookup(name);
      if (resolved !== undefined) return resolved;
      if (options.missing === 'keep') return whole;
      const at = [options.where, path].filter(Boolean).join(': ');
      throw new ConfigError(`${at ? `${at}: ` : ''}\${${name}} is not set`);
    }),
  ) as T;
}

/**
 * Materi's own secrets: a plan never reads them (`${MATERI_API_TOKEN}` is unset for a plan) and
 * stage commands do not inherit them, so a token allowed to deploy cannot read the server's
 * tokens or database password through a plan.
 */
export const SERVER_SECRETS: readonly string[] = [
  'MATERI_API_TOKEN',
  'MATERI_VIEWER_TOKEN',
  'MATERI_TOKENS_FILE',
  'MATERI_DATABASE_URL',
  'MATERI_REDIS_URL',
];

/** The lookup of `${NAME}` in plans: the process environment without {@link SERVER_SECRETS}. */
export function planLookup(env: NodeJS.ProcessEnv = process.env): Lookup {
  const lookup = environmentLookup(env);
  return (name) => (SERVER_SECRETS.includes(name) ? undefined : lookup(name));
}

/** The environment a stage command inherits: the process environment without {@link SERVER_SECRETS}. */
export function stageEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const name of SERVER_SECRETS) delete copy[name];
  return copy;
}

/** A lookup over the process environment, treating empty values as unset. */
export function environmentLookup(env: NodeJS.ProcessEnv = process.env): Lookup {
  return (name) => {
    const value = env[name];
    return value === undefined || value === '' ? undefined : value;
  };
}

function visitStrings(value: unknown, visit: (text: string) => void): void {
  if (typeof value === 'string') {
    visit(value);
  } else if (value !== null && typeof value === 'object') {
    for (const item of Array.isArray(value) ? value : Object.values(value)) visitStrings(item, visit);
  }
}

function mapStrings(value: unknown, map: (text: string, path: string) => string, path = ''): unknown {
  if (typeof value === 'string') return map(value, path);
  if (Array.isArray(value)) return value.map((v, i) => mapStrings(v, map, `${path}[${i}]`));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value))
      out[key] = mapStrings(v, map, path ? `${path}.${key}` : key);
    return out;
  }
  return value;
}
