import { randomUUID } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { streamKey } from '../../src/events/streams.js';
import { loadSettings } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/runtime/logging.js';
import { COMPONENTS, type Stack, startStack } from '../../src/runtime/stack.js';
import { postgresBackend, type TestDatabase } from '../store/backends.js';
import { deletePrefix, eventually, TEST_REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';

/** A whole stack (every component, default cadences) whose streams hold one entry each. */
interface IdleStack {
  prefix: string;
  stages: string[];
  stack: Stack;
  close(): Promise<void>;
}

async function startIdleStack(streams: number): Promise<IdleStack> {
  const prefix = uniquePrefix('idle');
  const database: TestDatabase = await postgresBackend.create();
  const stack = await startStack({
    settings: loadSettings({
      ...process.env,
      MATERI_REDIS_URL: TEST_REDIS_URL,
      MATERI_STREAM_PREFIX: prefix,
      MATERI_DATABASE_URL: database.databaseUrl!,
      MATERI_DATA_DIR: database.dataDir,
      MATERI_LOG_LEVEL: 'silent',
    }),
    logger: silentLogger(),
    role: 'up',
    components: COMPONENTS,
  });
  const stages = Array.from({ length: streams }, (_, i) => `s${i}`);
  await stack.bus.publisher.publishBatch(
    stages.map((stage) => ({
      type: `deployment:stage:${stage}:completed` as const,
      data: { deploymentId: randomUUID(), stage },
    })),
  );
  return {
    prefix,
    stages,
    stack,
    async close() {
      await stack.close();
      const redis = testRedis();
      await deletePrefix(redis, prefix);
      await redis.quit();
      await database.drop();
    },
  };
}

/** Resolves once Shield has read and acknowledged the entry of every stage stream. */
async function settled(idle: IdleStack): Promise<void> {
  const redis = testRedis();
  try {
    await eventually(async () => {
      for (const stage of idle.stages) {
        const key = streamKey(idle.prefix, `deployment:stage:${stage}:completed`);
        const groups = (await redis.xinfo('GROUPS', key).catch(() => [])) as unknown[][];
        const shield = groups.map(toRecord).find((g) => g.name === 'shield');
        if (shield?.pending !== '0' || shield['entries-read'] !== '1') return false;
      }
      return true;
    }, 60_000);
  } finally {
    await redis.quit();
  }
}

function toRecord(flat: unknown[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}

/** The addresses of the Redis connections whose name holds the prefix (every one a stack opens). */
async function connectionsOf(prefix: string): Promise<Set<string>> {
  const redis = testRedis();
  try {
    const list = String(await redis.client('LIST'));
    return new Set(
      list
        .split('\n')
        .filter((line) => line.includes(prefix))
        .map((line) => /(?:^| )addr=(\S+)/.exec(line)?.[1])
        .filter((addr): addr is string => addr !== undefined),
    );
  } finally {
    await redis.quit();
  }
}

/** What MONITOR shows of some connections: commands they sent, and commands scripts ran for them. */
interface Traffic {
  sent: string[];
  /** Commands run inside scripts on keys of the prefix (MONITOR shows them as from `lua`). */
  scripted: string[];
}

/** Records MONITOR output for the given connections and prefixes until `stop` is called. */
async function monitor(
  watched: { prefix: string; addresses: Set<string> }[],
): Promise<{ stop(): Promise<Map<string, Traffic>> }> {
  const url = new URL(TEST_REDIS_URL);
  const socket: Socket = connect(Number(url.port || 6379), url.hostname);
  const traffic = new Map(watched.map((w) => [w.prefix, { sent: [], scripted: [] } as Traffic]));
  let buffer = '';
  let listening = false;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split('\r\n');
    buffer = lines.pop()!;
    for (const line of lines) {
      if (line === '+OK') listening = true;
      const match = /^\+[\d.]+ \[\d+ ([^\]]+)\] (.*)$/.exec(line);
      if (!match) continue;
      const [, source, command] = match as unknown as [string, string, string];
      for (const w of watched) {
        if (source === 'lua' && command.includes(w.prefix)) traffic.get(w.prefix)!.scripted.push(command);
        else if (w.addresses.has(source)) traffic.get(w.prefix)!.sent.push(command);
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.write('MONITOR\r\n');
      resolve();
    });
  });
  // MONITOR answers +OK once it is listening.
  await eventually(() => listening, 10_000);
  return {
    async stop() {
      socket.destroy();
      return traffic;
    },
  };
}

function byCommand(commands: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of commands) {
    const name = /^"([^"]+)"/.exec(c)?.[1]?.toUpperCase() ?? '?';
    out[name] = (out[name] ?? 0) + 1;
  }
  return out;
}

describe('an idle stack on Redis', () => {
  const stacks: IdleStack[] = [];
  afterAll(async () => {
    await Promise.all(stacks.map((s) => s.close()));
  });

  it('sends a few commands a second, as many with 100 streams as with 10', async () => {
    const small = await startIdleStack(10);
    stacks.push(small);
    const large = await startIdleStack(100);
    stacks.push(large);
    await Promise.all([settled(small), settled(large)]);

    const watched = await Promise.all(
      [small, large].map(async (s) => ({ prefix: s.prefix, addresses: await connectionsOf(s.prefix) })),
    );
    for (const w of watched) expect(w.addresses.size).toBeGreaterThanOrEqual(8);
    const recording = await monitor(watched);
    const started = performance.now();
    // Long enough to hold about one round of every periodic read (blocking reads end every 10 s).
    await new Promise((r) => setTimeout(r, 10_000));
    const traffic = await recording.stop();
    const seconds = (performance.now() - started) / 1000;

    const sent = (s: IdleStack) => traffic.get(s.prefix)!.sent;
    const summary = Object.fromEntries(
      [small, large].map((s) => [
        `${s.stages.length} streams`,
        {
          sent: sent(s).length,
          seconds: Number(seconds.toFixed(1)),
          byCommand: byCommand(sent(s)),
          scripted: byCommand(traffic.get(s.prefix)!.scripted),
        },
      ]),
    );
    console.log(`idle Redis traffic: ${JSON.stringify(summary)}`);

    // About 1.3 a second on average; the slack covers every periodic job landing in the window
    // (a read of each of the 7 subscriptions, a sweep each, a heartbeat, an alerts round).
    for (const s of [small, large]) expect(sent(s).length).toBeLessThanOrEqual(2 * seconds + 20);
    // Nothing is sent per stream: the only commands naming a stage stream are the ones naming them
    // all (a subscription's blocking read, a sweep or inspection script over every stream).
    for (const s of [small, large]) {
      const perStream = sent(s).filter((c) => {
        const name = /^"([^"]+)"/.exec(c)?.[1]?.toLowerCase();
        return name !== 'xreadgroup' && name !== 'eval' && name !== 'evalsha' && c.includes(':stage:');
      });
      expect(perStream).toEqual([]);
    }
    // The two stacks started seconds apart, so a sweep round (7), an alerts round (5) or a registry
    // read (3) may fall in the window of one and not the other; with per-stream commands the
    // difference was ~500 (75/s against 22/s before).
    expect(Math.abs(sent(large).length - sent(small).length)).toBeLessThanOrEqual(25);
  }, 180_000);
});
