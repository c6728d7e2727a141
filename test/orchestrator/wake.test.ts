import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { pollUntil } from '../../src/orchestrator/wake.js';

describe('pollUntil (how a gate waits for its result)', () => {
  it('is woken by a result recorded between its query and its wait (no lost wake-up)', async () => {
    const events = new EventEmitter();
    let recorded: string | undefined;
    let queries = 0;
    const found = await pollUntil({
      query: async () => {
        queries++;
        const seen = recorded;
        // The result handler records and announces it right after this read, before the wait.
        if (queries === 1) {
          recorded = 'PASSED';
          events.emit('req-1');
        }
        return seen;
      },
      events,
      key: 'req-1',
      deadlineAt: Date.now() + 600_000,
      signal: new AbortController().signal,
      // A lost wake-up would wait this long: far past the test's timeout.
      pollMs: 600_000,
    });
    expect(found).toBe('PASSED');
    expect(queries).toBe(2);
    expect(events.listenerCount('req-1')).toBe(0);
  }, 20_000);

  it('takes a result handed over with the wake-up as it is: no query and no check between', async () => {
    const events = new EventEmitter();
    let queries = 0;
    let between = 0;
    const waiting = pollUntil<string>({
      query: async () => {
        queries++;
        return undefined;
      },
      events,
      key: 'req-4',
      deadlineAt: Date.now() + 600_000,
      signal: new AbortController().signal,
      pollMs: 600_000,
      between: async () => {
        between++;
      },
    });
    await new Promise((r) => setTimeout(r, 20));
    events.emit('req-4', 'ALL_HEALTHY');
    expect(await waiting).toBe('ALL_HEALTHY');
    expect([queries, between]).toEqual([1, 0]);
    expect(events.listenerCount('req-4')).toBe(0);
  });

  it('stops at an abort and at the deadline, leaving no listener behind', async () => {
    const events = new EventEmitter();
    const abort = new AbortController();
    const waiting = pollUntil({
      query: async () => undefined,
      events,
      key: 'req-2',
      deadlineAt: Date.now() + 600_000,
      signal: abort.signal,
      pollMs: 600_000,
    });
    abort.abort();
    expect(await waiting).toBeUndefined();
    expect(events.listenerCount('req-2')).toBe(0);
    const late = await pollUntil({
      query: async () => undefined,
      events,
      key: 'req-3',
      deadlineAt: Date.now() + 50,
      signal: new AbortController().signal,
      pollMs: 600_000,
    });
    expect(late).toBeUndefined();
  }, 20_000);
});
