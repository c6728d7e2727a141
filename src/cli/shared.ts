import type { EventBus } from '../bus/open.js';

/** Commander option parser that collects repeated values. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Every command says which backend it uses when it starts (on stderr, so stdout stays data). */
export function announceBackend(bus: Pick<EventBus, 'kind' | 'description' | 'prefix'>): void {
  if (process.env.MATERI_QUIET === '1') return;
  process.stderr.write(`materi: event bus ${bus.kind} ${bus.description} (prefix ${bus.prefix})\n`);
}
