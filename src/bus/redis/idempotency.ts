import { createHash } from 'node:crypto';
import { DONE_MARKER, entryPrefix, leaseMarker, parseLeaseMarker } from '../lease.js';
import type { HeldLease, IdempotencyStore, LeaseHolder } from '../types.js';
import type { RedisClient } from './connection.js';

export interface RedisIdempotencyStoreOptions {
  client: RedisClient;
  prefix: string;
  /** How long a handled event id is remembered. @defaultValue 7 days */
  windowMs?: number;
}

// One script call takes or records the markers of every event that reached the same step in
// the same tick: per message it costs a few Lua steps instead of a client command each. Per key,
// BEGIN gets the lease time, the holder's marker and the prefix every lease on its entry starts
// with (empty for an anonymous lease): a lease on the same entry was reclaimed from its holder.
const BEGIN = `
local out = {}
for i, key in ipairs(KEYS) do
  local lease, marker, entry = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  if redis.call('SET', key, marker, 'PX', lease, 'NX') then
    out[i] = 'acquired'
  else
    local held = redis.call('GET', key)
    if held == '${DONE_MARKER}' then
      out[i] = 'done'
    elseif entry ~= '' and string.sub(held, 1, #entry) == entry then
      redis.call('SET', key, marker, 'PX', lease)
      out[i] = 'acquired'
    else
      out[i] = 'busy'
    end
  end
end
return out`;

const COMPLETE = `
for _, key in ipairs(KEYS) do
  redis.call('SET', key, '${DONE_MARKER}', 'PX', ARGV[1])
end
return #KEYS`;

// Compare-and-set: replaces the marker only while it is still ARGV[1].
const SWAP = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1`;

interface Script {
  text: string;
  sha: string;
}

function script(text: string): Script {
  return { text, sha: createHash('sha1').update(text).digest('hex') };
}

const BEGIN_SCRIPT = script(BEGIN);
const COMPLETE_SCRIPT = script(COMPLETE);
const SWAP_SCRIPT = script(SWAP);

const MAX_BATCH = 500;

interface Waiting<T> {
  key: string;
  args: string[];
  resolve(value: T): void;
  reject(error: unknown): void;
}

/**
 * Idempotency markers in Redis: `<prefix>:idempotency:{<group>}:<event id>` holds the lease (see
 * `lease.ts`, with the lease time as TTL) while a consumer handles the event, then `done` for the
 * window. The group is a
 * hash tag, so a group's markers share a cluster slot and one script can handle a batch of them;
 * calls made in the same tick are sent as one script call per group.
 */
export class RedisIdempotencyStore implements IdempotencyStore {
  private readonly windowMs: number;
  private readonly begins = new Map<string, Waiting<'acquired' | 'done' | 'busy'>[]>();
  private readonly completes = new Map<string, Waiting<void>[]>();
  private scheduled = false;

  constructor(private readonly options: RedisIdempotencyStoreOptions) {
    this.windowMs = options.windowMs ?? 7 * 24 * 3600_000;
  }

  /** The marker key of an event for a group. */
  key(group: string, eventId: string): string {
    return `${this.options.prefix}:idempotency:{${group}}:${eventId}`;
  }

  begin(
    group: string,
    eventId: string,
    leaseMs: number,
    holder?: LeaseHolder,
  ): Promise<'acquired' | 'done' | 'busy'> {
    return this.enqueue(this.begins, group, eventId, [
      String(leaseMs),
      leaseMarker(holder),
      holder ? entryPrefix(holder) : '',
    ]);
  }

  complete(group: string, eventId: string): Promise<void> {
    return this.enqueue(this.completes, group, eventId, []);
  }

  async release(group: string, eventId: string, holder?: LeaseHolder): Promise<void> {
    const key = this.key(group, eventId);
    if (!holder) {
      await this.options.client.del(key);
      return;
    }
    await this.run(SWAP_SCRIPT, [key], [leaseMarker(holder), '', '']);
  }

  async heldBy(group: string, eventId: string): Promise<HeldLease | undefined> {
    return parseLeaseMarker(await this.options.client.get(this.key(group, eventId)));
  }

  async takeOver(
    group: string,
    eventId: string,
    marker: string,
    holder: LeaseHolder,
    leaseMs: number,
  ): Promise<boolean> {
    const key = this.key(group, eventId);
    return (await this.run(SWAP_SCRIPT, [key], [marker, leaseMarker(holder), String(leaseMs)])) === 1;
  }

  private enqueue<T>(
    queue: Map<string, Waiting<T>[]>,
    group: string,
    eventId: string,
    args: string[],
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const list = queue.get(group);
      const waiting = { key: this.key(group, eventId), args, resolve, reject };
      if (list) list.push(waiting);
      else queue.set(group, [waiting]);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const begins = [...this.begins.values()];
    const completes = [...this.completes.values()];
    this.begins.clear();
    this.completes.clear();
    for (const list of begins) {
      for (const batch of batches(list)) {
        this.settle(
          batch,
          this.run(
            BEGIN_SCRIPT,
            batch.map((w) => w.key),
            batch.flatMap((w) => w.args),
          ),
          (replies, j) => (replies as string[])[j],
        );
      }
    }
    for (const list of completes) {
      for (const batch of batches(list)) {
        this.settle(
          batch,
          this.run(
            COMPLETE_SCRIPT,
            batch.map((w) => w.key),
            [String(this.windowMs)],
          ),
          () => undefined,
        );
      }
    }
  }

  /** Resolves every waiting call of a batch from the script's reply, or rejects them all. */
  private settle<T>(
    batch: Waiting<T>[],
    reply: Promise<unknown>,
    pick: (reply: unknown, index: number) => unknown,
  ): void {
    reply.then(
      (value) => {
        for (const [j, w] of batch.entries()) w.resolve(pick(value, j) as T);
      },
      (error) => {
        for (const w of batch) w.reject(error);
      },
    );
  }

  /** EVALSHA: the script by its digest; the first call on a server that lacks it sends it whole. */
  private async run(script: Script, keys: string[], args: string[]): Promise<unknown> {
    const keysAndArgs = [keys.length, ...keys, ...args];
    try {
      return await this.options.client.call('EVALSHA', script.sha, ...keysAndArgs);
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith('NOSCRIPT'))) throw error;
      return this.options.client.call('EVAL', script.text, ...keysAndArgs);
    }
  }
}

function batches<T>(list: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += MAX_BATCH) out.push(list.slice(i, i + MAX_BATCH));
  return out;
}
