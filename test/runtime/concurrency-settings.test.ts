import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors/index.js';
import { loadSettings } from '../../src/runtime/config.js';
import { WORKER_DEFAULTS } from '../../src/runtime/stack.js';

describe('MATERI_CONCURRENCY', () => {
  it('sets the concurrency of the components it names and leaves the others to their defaults', () => {
    expect(loadSettings({}).concurrency).toEqual({});
    expect(
      loadSettings({ MATERI_CONCURRENCY: 'validator=64, health-monitor=500,shield=8' }).concurrency,
    ).toEqual({
      validator: 64,
      'health-monitor': 500,
      shield: 8,
    });
  });

  it.each([
    ['validator=0', 'validator=0'],
    ['validater=4', 'validater=4'],
    ['validator', 'validator'],
    ['validator=4,notifier=x', 'validator=4,notifier=x'],
  ])('rejects %s with a one-line error naming the setting and the value', (value, shown) => {
    expect(() => loadSettings({ MATERI_CONCURRENCY: value })).toThrow(ConfigError);
    expect(() => loadSettings({ MATERI_CONCURRENCY: value })).toThrow(
      new RegExp(`^MATERI_CONCURRENCY: must list <component>=<positive integer>.*\\(got "${shown}"\\)$`),
    );
  });

  it('defaults do not make one gate the bottleneck of the fleet', () => {
    // The seed ran the validator at concurrency 1 for the whole fleet; order is kept per deployment instead.
    expect(WORKER_DEFAULTS.validator.concurrency).toBeGreaterThanOrEqual(16);
    expect(WORKER_DEFAULTS['dependency-checker'].concurrency).toBeGreaterThanOrEqual(16);
    expect(WORKER_DEFAULTS['health-monitor'].concurrency).toBeGreaterThanOrEqual(100);
  });
});
