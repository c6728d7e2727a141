import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/** examples/local.yaml's default ports: the demo must not depend on them being free. */
const PLAN_DEFAULT_PORTS = [4701, 4702, 4703];

/** Holds `port` on 127.0.0.1; undefined when something else already holds it (taken either way). */
function occupy(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

describe('npm start (materi up --demo)', () => {
  it('runs the demo on the embedded backend on free ports: v2 succeeds, v3 is rolled back, the dashboard serves, Ctrl-C stops it cleanly', async () => {
    const held = await Promise.all(PLAN_DEFAULT_PORTS.map(occupy));
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
    const finished = new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d;
        if (out.includes('demo: done')) resolve();
      });
      child.once('exit', () => resolve());
    });
    child.stderr.on('data', (d: Buffer) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await finished;
      expect(out).toMatch(/deployment v2 succeeded/);
      expect(out).toMatch(/deployment v3 rolled back/);
      expect(err).toContain('event bus embedded sqlite:');

      // With 4701–4703 taken the services run elsewhere, at v2 again after the rollback.
      const services = /demo: services api (\S+), worker (\S+), web (\S+)\n/.exec(out);
      expect(services, out).not.toBeNull();
      const serviceUrls = services!.slice(1, 4);
      for (const serviceUrl of serviceUrls) {
        expect(PLAN_DEFAULT_PORTS).not.toContain(Number(new URL(serviceUrl).port));
        const health = await fetch(new URL('health', serviceUrl));
        expect(health.status).toBe(200);
        expect(((await health.json()) as { version: string }).version).toBe('v2');
      }

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
      for (const serviceUrl of serviceUrls)
        await expect(fetch(new URL('health', serviceUrl))).rejects.toThrow();
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await Promise.all(held.map((server) => server && new Promise((resolve) => server.close(resolve))));
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});
