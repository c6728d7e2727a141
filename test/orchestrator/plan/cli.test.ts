import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerPlanCommands } from '../../../src/cli/plan.js';
import { MateriError } from '../../../src/errors/index.js';

const example = (name: string) => fileURLToPath(new URL(`../../../examples/${name}`, import.meta.url));
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'materi-plan-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `materi <args>` in this process, as src/cli/main.ts would, and collects stdout. */
async function materi(args: string[]): Promise<{ stdout: string; error?: unknown }> {
  const program = new Command('materi')
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} });
  registerPlanCommands(program);
  let stdout = '';
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(['node', 'materi', ...args]);
    return { stdout };
  } catch (error) {
    return { stdout, error };
  } finally {
    write.mockRestore();
  }
}

describe('materi plan validate', () => {
  it('prints the stages in waves and the environment variables the plan needs', async () => {
    const file = example('three-stage.yaml');
    const { stdout, error } = await materi(['plan', 'validate', file, '--version', 'v1.4.2']);
    expect(error).toBeUndefined();
    expect(stdout).toContain(`${file}: valid plan`);
    expect(stdout).toMatch(/version\s+v1\.4\.2\n/);
    expect(stdout).toMatch(/project\s+materi\n/);
    expect(stdout).toMatch(/environment\s+production\n/);
    expect(stdout).toContain('stages       3 in 2 waves');
    expect(stdout).toMatch(
      /wave 1\s+railway \(api, worker\) via railway, timeout 15m\n\s+folio \(docs\) via command/,
    );
    expect(stdout).toMatch(/wave 2\s+vercel \(web\) via vercel, timeout 20m, after railway/);
    expect(stdout).toMatch(/RAILWAY_TOKEN\s+services\.api\.env\.source\.token, /);
    expect(stdout).toContain('api         DATABASE_URL, REDIS_URL, JWT_SECRET (source: railway)');
  });

  it('prints JSON with --json, and takes --env and --var', async () => {
    const plan = join(dir, 'vars.yaml');
    await writeFile(
      plan,
      `project: materi
services:
  api: { health: 'https://\${ENVIRONMENT}.\${DOMAIN}/health' }
stages:
  - { name: api, services: [api], provider: { type: command, deploy: './deploy.sh \${REGION}' } }
`,
    );
    const { stdout, error } = await materi([
      'plan',
      'validate',
      plan,
      '--env',
      'staging',
      '--var',
      'DOMAIN=materi.dev',
      '--var',
      'REGION=eu=west',
      '--json',
    ]);
    expect(error).toBeUndefined();
    const summary = JSON.parse(stdout);
    expect(summary).toMatchObject({
      valid: true,
      project: 'materi',
      environment: 'staging',
      waves: [[{ name: 'api', services: ['api'], provider: 'command', dependsOn: [], timeoutMs: 600_000 }]],
      rollbackOrder: ['api'],
      services: [{ name: 'api', health: 'https://staging.materi.dev/health' }],
      references: [],
    });
  });

  it('fails with the one-line plan error and exit code 2', async () => {
    const plan = join(dir, 'bad.yaml');
    await writeFile(
      plan,
      `project: materi
services: { api: {}, web: {} }
stages:
  - { name: api, services: [api], provider: { type: command, deploy: x } }
  - { name: web, services: [web], provider: { type: heroku } }
`,
    );
    const { stdout, error } = await materi(['plan', 'validate', plan]);
    expect(stdout).toBe('');
    expect(error).toBeInstanceOf(MateriError);
    expect((error as MateriError).exitCode).toBe(2);
    expect((error as MateriError).message).toBe(
      `${plan}: stages[1].provider.type: expected one of command|http|vercel|railway|local, got "heroku"`,
    );
  });

  describe('when a plan has more problems than the one-line error shows', () => {
    /** A plan with `count` problems, one a line: an unknown key in each service. */
    async function planWithProblems(count: number): Promise<string> {
      const plan = join(dir, `problems-${count}.yaml`);
      const names = Array.from({ length: count }, (_, i) => `s${i}`);
      await writeFile(
        plan,
        [
          'project: materi',
          'services:',
          ...names.map((name) => `  ${name}: { colour: red }`),
          'stages:',
          `  - { name: all, services: [${names.join(', ')}], provider: { type: command, deploy: x } }`,
          '',
        ].join('\n'),
      );
      return plan;
    }

    it('lists every problem with --json, none left out, and still exits 2', async () => {
      const plan = await planWithProblems(13);
      const { stdout, error } = await materi(['plan', 'validate', plan, '--json']);
      expect((error as MateriError).exitCode).toBe(2);
      expect((error as Error).message).toBe(
        `${plan}: services.s0.colour: unknown key (and 12 more problems)`,
      );
      const report = JSON.parse(stdout);
      expect(report).toMatchObject({ valid: false, file: plan });
      expect(report.problems).toHaveLength(13);
      expect(report.problems[12]).toEqual({ path: 'services.s12.colour', message: 'unknown key', line: 15 });
      expect(stdout).not.toContain('more problem');
    });

    it('lists the first 10 without --json, then says how many more there are', async () => {
      const plan = await planWithProblems(13);
      const { stdout, error } = await materi(['plan', 'validate', plan]);
      expect((error as MateriError).exitCode).toBe(2);
      const lines = stdout.trimEnd().split('\n');
      expect(lines[0]).toBe(`${plan}: invalid plan, 13 problems`);
      expect(lines.slice(1, 11)).toEqual(
        Array.from({ length: 10 }, (_, i) =>
          expect.stringMatching(new RegExp(`^  line ${i + 3} +services\\.s${i}\\.colour: unknown key$`)),
        ),
      );
      expect(lines[11]).toBe('  (and 3 more problems; --json lists them all)');
      expect(lines).toHaveLength(12);
    });

    it('lists them all without --json when they fit, with no "more" line', async () => {
      const plan = await planWithProblems(2);
      const { stdout } = await materi(['plan', 'validate', plan]);
      expect(stdout).toBe(
        `${plan}: invalid plan, 2 problems\n  line 3  services.s0.colour: unknown key\n  line 4  services.s1.colour: unknown key\n`,
      );
    });
  });

  it('rejects a malformed --var with exit code 2', async () => {
    const { error } = await materi(['plan', 'validate', example('local.yaml'), '--var', 'NOVALUE']);
    expect((error as MateriError).exitCode).toBe(2);
    expect((error as Error).message).toBe('--var "NOVALUE": expected key=value');
  });

  it('has help text', () => {
    const program = new Command('materi');
    registerPlanCommands(program);
    const validate = program.commands
      .find((c) => c.name() === 'plan')!
      .commands.find((c) => c.name() === 'validate')!;
    const help = validate.helpInformation();
    expect(help).toContain('--var <key=value>');
    expect(help).toContain('--env <environment>');
    expect(help).toContain('--json');
    expect(program.commands.find((c) => c.name() === 'plan')!.description()).toContain('plan files');
  });
});
