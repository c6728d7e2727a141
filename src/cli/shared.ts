import { hostname, userInfo } from 'node:os';
import type { EventBus } from '../bus/open.js';
import { BadInputError } from '../errors/index.js';

// The commands' registration imports this module, and it must stay cheap (see main.ts): nothing
// here may import a backend, a driver or a server.

/** The actor a CLI command names in its requests: `user@host`. */
export function whoAmI(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `cli@${hostname()}`;
  }
}

/** Commander option parser that collects repeated values. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Every command says which backend it uses when it starts (on stderr, so stdout stays data). */
export function announceBackend(bus: Pick<EventBus, 'kind' | 'description' | 'prefix'>): void {
  if (process.env.MATERI_QUIET === '1') return;
  process.stderr.write(`materi: event bus ${bus.kind} ${bus.description} (prefix ${bus.prefix})\n`);
}

/** `--var k=v` values as a map; the first `=` separates the name from the value. */
export function parseVars(values: string[]): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const entry of values) {
    const at = entry.indexOf('=');
    if (at <= 0) throw new BadInputError(`--var ${JSON.stringify(entry)}: expected key=value`);
    vars[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return vars;
}
