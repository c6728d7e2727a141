import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

describe('npm start (materi up --demo)', () => {
  it('runs the demo on the embedded backend: v2 succeeds, v3 is rolled back, the dashboard serves, Ctrl-C stops it cleanly', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'materi-demo-'));
    const env: NodeJS.ProcessEnv = { ...process.env, MATERI_DATA_DIR: dataDir, MATERI_LOG_LEVEL: 'warn' };
    delete env.MATERI_REDIS_URL;
    delete env.MATERI_DATABASE_URL;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'up', '--demo', '--port', '0'],
      {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const started = Date.now();
      while (!out.includes('demo: done') && Date.now() - started < 60_000 && child.exitCode === null) {
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(out).toMatch(/deployment v2 succeeded/);
      expect(out).toMatch(/deployment v3 rolled back/);
      expect(Date.now() - started).toBeLessThan(60_000);
      expect(err).toContain('event bus embedded sqlite:');
      const url = /Dashboard: (http:\/\/\S+)\//.exec(out)![1]!;
      const page = await fetch(`${url}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
      const list = (await (await fetch(`${url}/api/deployments`)).json()) as {
        deployments: { version: string; status: string }[];
      };
      expect(list.deployments.map((d) => `${d.version} ${d.status}`)).toEqual([
        'v3 ROLLED_BACK',
        'v2 SUCCESS',
        'v1 SUCCESS',
      ]);
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      // The demo's services were stopped with it.
      await expect(fetch('http://127.0.0.1:4701/health')).rejects.toThrow();
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
