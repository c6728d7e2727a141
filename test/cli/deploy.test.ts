import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { registerDeployCommands } from '../../src/cli/deploy.js';
import { runMateri } from '../support/materi-cli.js';

let dir: string;
let savedEnv: NodeJS.ProcessEnv;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'materi-deploy-cli-'));
  savedEnv = { ...process.env };
  // The embedded backend in this test's own data dir.
  for (const name of [
    'MATERI_REDIS_URL',
    'MATERI_REDIS_CLUSTER',
    'MATERI_DATABASE_URL',
    'MATERI_NOTIFIER_CONFIG',
  ])
    delete process.env[name];
  process.env.MATERI_DATA_DIR = dir;
  process.env.MATERI_LOG_LEVEL = 'error';
});
afterEach(async () => {
  process.env = savedEnv;
  process.exitCode = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** Runs `materi <args>` in this process, as src/cli/main.ts would. */
async function materi(args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const { code, stdout, stderr } = await runMateri([registerDeployCommands], args);
  return { stdout, stderr, exitCode: code };
}

describe('materi deploy --standalone', () => {
  it('prints the reason of a failed deployment once, on the summary line, and exits 1', async () => {
    const plan = join(dir, 'plan.yaml');
    await writeFile(
      plan,
      [
        'project: shop',
        'environment: staging',
        'services:',
        '  api: {}',
        'stages:',
        '  - name: api',
        '    services: [api]',
        '    provider:',
        '      type: command',
        `      deploy: ${JSON.stringify('echo "disk full on /var/lib/shop" >&2; exit 3')}`,
        '',
      ].join('\n'),
    );
    const { stdout, stderr, exitCode } = await materi(['deploy', plan, '--version', 'v1', '--standalone']);
    expect(exitCode).toBe(1);
    const output = stdout + stderr;
    expect(output.split('disk full on /var/lib/shop').length - 1).toBe(1);
    expect(stdout).toContain('✗ stage api failed (');
    expect(stdout).toContain('✗ deployment failed (stage api)\n');
    expect(stdout).toMatch(
      /■ FAILURE in [\d.]+ s — stage api failed: command exited with code 3: disk full on \/var\/lib\/shop\n$/,
    );
  });
});
