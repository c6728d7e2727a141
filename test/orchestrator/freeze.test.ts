import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BadInputError, ConfigError, EnvironmentFrozenError } from '../../src/errors/index.js';
import {
  activeFreeze,
  checkFreeze,
  type FreezeWindow,
  freezeListSchema,
  loadFreezeSettings,
  parseFreezeSettings,
  settingsWindowsFor,
} from '../../src/orchestrator/freeze.js';
import { PlanInvalidError, parsePlan } from '../../src/orchestrator/plan/index.js';

/** Windows as a plan or settings file writes them. */
function windows(...items: unknown[]): FreezeWindow[] {
  return freezeListSchema.parse(items);
}

const at = (iso: string) => Date.parse(iso);

describe('activeFreeze', () => {
  describe('when a one-off window is given', () => {
    const list = windows({
      name: 'year-end',
      start: '2026-12-20T00:00:00+01:00',
      end: '2027-01-04T00:00:00+01:00',
    });

    it('covers from its start (inclusive) to its end (exclusive)', () => {
      expect(activeFreeze(list, 'production', at('2026-12-19T22:59:59Z'))).toBeUndefined();
      const freeze = activeFreeze(list, 'production', at('2026-12-19T23:00:00Z'));
      expect(freeze?.name).toBe('year-end');
      expect(freeze?.until.toISOString()).toBe('2027-01-03T23:00:00.000Z');
      expect(freeze?.reason).toBe('2026-12-20T00:00:00+01:00 to 2027-01-04T00:00:00+01:00');
      expect(activeFreeze(list, 'production', at('2027-01-03T23:00:00Z'))).toBeUndefined();
    });
  });

  describe('when a weekly window is in another time zone', () => {
    const list = windows({ days: ['fri'], from: '17:00', to: '23:00', timeZone: 'America/New_York' });

    it('compares the wall clock of that zone, not UTC', () => {
      // Friday 2026-12-04 17:30 in New York is 22:30 UTC; Saturday 03:30 UTC is still Friday there.
      expect(activeFreeze(list, 'production', at('2026-12-04T22:30:00Z'))?.until.toISOString()).toBe(
        '2026-12-05T04:00:00.000Z',
      );
      expect(activeFreeze(list, 'production', at('2026-12-05T03:30:00Z'))).toBeDefined();
      expect(activeFreeze(list, 'production', at('2026-12-04T17:30:00Z'))).toBeUndefined();
    });

    it('describes the window with its zone when it has no name', () => {
      expect(activeFreeze(list, 'production', at('2026-12-04T22:30:00Z'))?.name).toBe(
        'fri 17:00-23:00 America/New_York',
      );
    });

    it('defaults to UTC', () => {
      const utc = windows({ days: ['mon'], from: '09:00', to: '10:00' });
      expect(activeFreeze(utc, 'production', at('2026-12-07T09:30:00Z'))?.until.toISOString()).toBe(
        '2026-12-07T10:00:00.000Z',
      );
    });
  });

  describe('when a window runs past midnight', () => {
    const list = windows({ days: ['fri'], from: '22:00', to: '06:00', timeZone: 'Europe/Berlin' });

    it('covers the listed day from `from` and the next day until `to`', () => {
      // Friday 2026-12-04 23:00 Berlin (22:00 UTC) until Saturday 06:00 Berlin (05:00 UTC).
      expect(activeFreeze(list, 'production', at('2026-12-04T22:00:00Z'))?.until.toISOString()).toBe(
        '2026-12-05T05:00:00.000Z',
      );
      expect(activeFreeze(list, 'production', at('2026-12-05T04:59:00Z'))?.until.toISOString()).toBe(
        '2026-12-05T05:00:00.000Z',
      );
      expect(activeFreeze(list, 'production', at('2026-12-05T05:00:00Z'))).toBeUndefined();
      // Saturday night is not listed, and neither is the early Friday morning (Thursday not listed).
      expect(activeFreeze(list, 'production', at('2026-12-05T22:00:00Z'))).toBeUndefined();
      expect(activeFreeze(list, 'production', at('2026-12-04T03:00:00Z'))).toBeUndefined();
    });

    it('wraps Sunday night into Monday', () => {
      const sunday = windows({ days: ['sun'], from: '20:00', to: '02:00' });
      expect(activeFreeze(sunday, 'production', at('2026-12-07T01:00:00Z'))?.until.toISOString()).toBe(
        '2026-12-07T02:00:00.000Z',
      );
    });
  });

  describe('when daylight saving time changes (Europe/Berlin)', () => {
    it('ends at the wall-clock end on the last Sunday of March (the night is an hour short)', () => {
      // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
      const list = windows({ days: ['sun'], from: '01:00', to: '04:00', timeZone: 'Europe/Berlin' });
      expect(activeFreeze(list, 'production', at('2026-03-28T23:59:00Z'))).toBeUndefined();
      const freeze = activeFreeze(list, 'production', at('2026-03-29T00:30:00Z'));
      expect(freeze?.until.toISOString()).toBe('2026-03-29T02:00:00.000Z');
      expect(activeFreeze(list, 'production', at('2026-03-29T01:30:00Z'))).toBeDefined();
      expect(activeFreeze(list, 'production', at('2026-03-29T02:00:00Z'))).toBeUndefined();
    });

    it('moves an end inside the skipped hour forward by the gap, as Temporal does', () => {
      const list = windows({ days: ['sat'], from: '22:00', to: '02:30', timeZone: 'Europe/Berlin' });
      expect(activeFreeze(list, 'production', at('2026-03-28T22:00:00Z'))?.until.toISOString()).toBe(
        '2026-03-29T01:30:00.000Z',
      );
    });

    it('covers both passes of the repeated hour on the last Sunday of October', () => {
      // 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00 UTC).
      const list = windows({ days: ['sun'], from: '02:00', to: '03:00', timeZone: 'Europe/Berlin' });
      expect(activeFreeze(list, 'production', at('2026-10-25T00:15:00Z'))?.until.toISOString()).toBe(
        '2026-10-25T02:00:00.000Z',
      );
      expect(activeFreeze(list, 'production', at('2026-10-25T01:15:00Z'))).toBeDefined();
      expect(activeFreeze(list, 'production', at('2026-10-25T02:00:00Z'))).toBeUndefined();
    });

    it('covers the second pass of the repeated hour when the window ends inside it (America/New_York)', () => {
      // 2026-11-01: 02:00 EDT goes back to 01:00 EST (06:00 UTC); 01:15 happens at 05:15Z and 06:15Z.
      const list = windows({ days: ['sun'], from: '00:00', to: '01:30', timeZone: 'America/New_York' });
      expect(activeFreeze(list, 'production', at('2026-11-01T05:15:00Z'))).toBeDefined();
      expect(activeFreeze(list, 'production', at('2026-11-01T06:15:00Z'))?.until.toISOString()).toBe(
        '2026-11-01T06:30:00.000Z',
      );
      expect(activeFreeze(list, 'production', at('2026-11-01T06:30:00Z'))).toBeUndefined();
    });

    it('starts a window whose start time was skipped at the same time after the jump', () => {
      // 02:30 does not exist in Berlin on 2026-03-29: it counts as 03:30 CEST (01:30 UTC).
      const list = windows({ days: ['sun'], from: '02:30', to: '05:00', timeZone: 'Europe/Berlin' });
      expect(activeFreeze(list, 'production', at('2026-03-29T01:10:00Z'))).toBeUndefined();
      expect(activeFreeze(list, 'production', at('2026-03-29T01:30:00Z'))?.until.toISOString()).toBe(
        '2026-03-29T03:00:00.000Z',
      );
    });

    it('uses summer time offsets once the change is past', () => {
      const list = windows({ days: ['mon'], from: '09:00', to: '17:00', timeZone: 'Europe/Berlin' });
      expect(activeFreeze(list, 'production', at('2026-03-30T07:00:00Z'))?.until.toISOString()).toBe(
        '2026-03-30T15:00:00.000Z',
      );
      expect(activeFreeze(list, 'production', at('2026-03-30T06:59:00Z'))).toBeUndefined();
    });
  });

  describe('when windows touch or overlap', () => {
    it('reports the end of the whole freeze, not of the first window', () => {
      const list = windows(
        { name: 'weekend', days: ['fri'], from: '18:00', to: '24:00' },
        { name: 'weekend days', days: ['sat', 'sun'], from: '00:00', to: '24:00' },
      );
      const freeze = activeFreeze(list, 'production', at('2026-12-04T19:00:00Z'));
      expect(freeze?.name).toBe('weekend');
      expect(freeze?.until.toISOString()).toBe('2026-12-07T00:00:00.000Z');
    });
  });

  describe('when a window names environments', () => {
    const list = windows({
      days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'],
      from: '00:00',
      to: '24:00',
      environments: ['production'],
    });

    it('freezes only those', () => {
      expect(activeFreeze(list, 'production', at('2026-12-07T12:00:00Z'))).toBeDefined();
      expect(activeFreeze(list, 'staging', at('2026-12-07T12:00:00Z'))).toBeUndefined();
    });
  });
});

describe('checkFreeze', () => {
  const base = {
    project: 'shop',
    environment: 'production',
    windows: windows({
      name: 'year-end',
      start: '2026-12-20T00:00:00Z',
      end: '2027-01-04T00:00:00Z',
      environments: ['production'],
    }).map((w) => ({ ...w, source: 'plan shop.yaml' })),
    by: 'ana@ci',
    now: at('2026-12-24T12:00:00Z'),
  };

  it('refuses with one line naming the environment, the window, its end and the override', () => {
    expect(() => checkFreeze(base)).toThrow(EnvironmentFrozenError);
    try {
      checkFreeze(base);
    } catch (error) {
      const message = (error as Error).message;
      expect(message).toBe(
        'environment production of shop is frozen by "year-end" (2026-12-20T00:00:00Z to 2027-01-04T00:00:00Z, plan shop.yaml) until 2027-01-04T00:00:00Z; to deploy anyway: --override-freeze --reason "<why>" (API: overrideFreeze, overrideReason)',
      );
      expect(message).not.toContain('\n');
      expect((error as EnvironmentFrozenError).code).toBe('MATERI_ERR_ENVIRONMENT_FROZEN');
      expect((error as EnvironmentFrozenError).exitCode).toBe(2);
      expect((error as EnvironmentFrozenError).httpStatus).toBe(423);
    }
  });

  it('lets an override with a reason through and says what it overrode', () => {
    expect(checkFreeze({ ...base, override: true, overrideReason: ' hotfix for INC-42 ' })).toEqual({
      window: 'year-end (2026-12-20T00:00:00Z to 2027-01-04T00:00:00Z, plan shop.yaml)',
      reason: 'hotfix for INC-42',
      by: 'ana@ci',
    });
  });

  it('refuses an override without a reason, frozen or not', () => {
    expect(() => checkFreeze({ ...base, override: true })).toThrow(BadInputError);
    expect(() => checkFreeze({ ...base, override: true, overrideReason: '  ' })).toThrow(
      '--override-freeze needs --reason',
    );
    expect(() => checkFreeze({ ...base, environment: 'staging', override: true })).toThrow(BadInputError);
  });

  it('records nothing when nothing is frozen', () => {
    expect(checkFreeze({ ...base, environment: 'staging' })).toBeUndefined();
    expect(
      checkFreeze({ ...base, environment: 'staging', override: true, overrideReason: 'x' }),
    ).toBeUndefined();
  });

  it('names an open incident, and lets an override through it', () => {
    const incident = {
      deploymentId: 'dep-1',
      summary: 'Deployment failed at stage api: exit 3',
      openedAt: new Date('2026-12-07T10:00:00Z'),
    };
    expect(() => checkFreeze({ ...base, environment: 'staging', incident })).toThrow(
      'environment staging of shop is frozen: open critical incident "Deployment failed at stage api: exit 3" (deployment dep-1, since 2026-12-07T10:00:00Z) stops the line until a deployment to staging succeeds; to deploy anyway: --override-freeze --reason',
    );
    expect(
      checkFreeze({ ...base, environment: 'staging', incident, override: true, overrideReason: 'the fix' }),
    ).toEqual({
      window: 'incident: Deployment failed at stage api: exit 3 (deployment dep-1)',
      reason: 'the fix',
      by: 'ana@ci',
    });
  });
});

describe('freeze windows in a plan', () => {
  const plan = (freeze: string) =>
    [
      'project: shop',
      'services:',
      '  api: {}',
      'stages:',
      '  - name: api',
      '    services: [api]',
      '    provider: { type: command, deploy: "true" }',
      'freeze:',
      freeze,
      '',
    ].join('\n');

  function problem(freeze: string): string {
    try {
      parsePlan(plan(freeze), 'shop.yaml');
    } catch (error) {
      expect(error).toBeInstanceOf(PlanInvalidError);
      return (error as Error).message;
    }
    throw new Error('the plan was accepted');
  }

  it('loads weekly and one-off windows', () => {
    const loaded = parsePlan(
      plan(
        [
          '  - { name: weekend, days: [fri, sat], from: "18:00", to: "06:00", timeZone: Europe/Berlin, environments: [production] }',
          '  - { start: 2026-12-20T00:00:00Z, end: "2027-01-04T00:00:00+01:00" }',
        ].join('\n'),
      ),
      'shop.yaml',
    );
    expect(loaded.freeze).toMatchObject([
      { kind: 'weekly', name: 'weekend', days: ['fri', 'sat'], timeZone: 'Europe/Berlin' },
      { kind: 'once', startMs: at('2026-12-20T00:00:00Z'), endMs: at('2027-01-03T23:00:00Z') },
    ]);
  });

  it('has no windows by default', () => {
    expect(parsePlan(plan('  []'), 'shop.yaml').freeze).toEqual([]);
  });

  it('names the file, the field and the value of a bad time zone', () => {
    expect(problem('  - { days: [fri], from: "18:00", to: "20:00", timeZone: Europe/Berln }')).toBe(
      'shop.yaml: freeze[0].timeZone: unknown time zone "Europe/Berln" (an IANA name, e.g. Europe/Berlin)',
    );
  });

  it('names a bad day', () => {
    expect(problem('  - { days: [fri, fry], from: "18:00", to: "20:00" }')).toBe(
      'shop.yaml: freeze[0].days[1]: expected one of mon|tue|wed|thu|fri|sat|sun, got "fry"',
    );
  });

  it('names a bad time', () => {
    expect(problem('  - { days: [fri], from: "25:00", to: "20:00" }')).toContain(
      'shop.yaml: freeze[0].from: must be a time HH:MM (00:00..23:59)',
    );
  });

  it('refuses an end before the start', () => {
    expect(problem('  - { start: "2027-01-04T00:00:00Z", end: "2026-12-20T00:00:00Z" }')).toBe(
      'shop.yaml: freeze[0].end: must be after start (2027-01-04T00:00:00Z), got "2026-12-20T00:00:00Z"',
    );
  });

  it('refuses a time without an offset or on a day that does not exist', () => {
    expect(problem('  - { start: "2026-12-20T00:00:00", end: "2026-12-21T00:00:00Z" }')).toContain(
      'freeze[0].start: must be an RFC 3339 time with an offset',
    );
    expect(problem('  - { start: "2026-02-30T00:00:00Z", end: "2026-03-21T00:00:00Z" }')).toContain(
      'got "2026-02-30T00:00:00Z"',
    );
  });

  it('refuses an unknown key and an empty window', () => {
    expect(problem('  - { days: [fri], from: "18:00", to: "20:00", zone: UTC }')).toBe(
      'shop.yaml: freeze[0].zone: unknown key',
    );
    expect(problem('  - { days: [fri], from: "18:00", to: "18:00" }')).toContain('freeze[0].to: must differ');
  });
});

describe('MATERI_FREEZE_FILE', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'materi-freeze-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads windows for some projects', async () => {
    const file = join(dir, 'freeze.yaml');
    await writeFile(
      file,
      'project: [shop]\nfreeze:\n  - { name: audit, days: [mon], from: "00:00", to: "24:00", environments: [production] }\n',
    );
    const settings = await loadFreezeSettings(file);
    expect(settingsWindowsFor(settings, 'billing')).toEqual([]);
    const [window] = settingsWindowsFor(settings, 'shop');
    expect(window).toMatchObject({ name: 'audit', source: `MATERI_FREEZE_FILE ${file}` });
    expect(
      activeFreeze(settingsWindowsFor(settings, 'shop'), 'production', at('2026-12-07T08:00:00Z'))?.reason,
    ).toBe(`mon 00:00-24:00 UTC, MATERI_FREEZE_FILE ${file}`);
  });

  it('names the file, the field and the value of a mistake', async () => {
    expect(() =>
      parseFreezeSettings({ freeze: [{ days: ['fri'], from: '9:00', to: '10:00' }] }, 'f.yaml'),
    ).toThrow(
      new ConfigError(
        'MATERI_FREEZE_FILE f.yaml: freeze[0].from: must be a time HH:MM (00:00..23:59), got "9:00"',
      ),
    );
    expect(() => parseFreezeSettings({ windows: [] }, 'f.yaml')).toThrow(
      'MATERI_FREEZE_FILE f.yaml: windows: unknown key',
    );
    await expect(loadFreezeSettings(join(dir, 'missing.yaml'))).rejects.toThrow(
      /^MATERI_FREEZE_FILE .*missing\.yaml: cannot read it: ENOENT/,
    );
  });
});
