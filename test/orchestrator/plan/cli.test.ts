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
