import { promises as dns, type SrvRecord } from 'node:dns';
import { connect } from 'node:net';
import { z } from 'zod';
import { describeCause } from '../../../errors/index.js';
import { type CheckContext, CheckFailure, checkItemSettings, defineValidationCheck } from '../check.js';

const discoveryItem = z
  .strictObject({
    /** Names the result (`discovery:<name>`). */
    name: z.string().min(1),
    /** Host name that must resolve (A/AAAA, through the system resolver and /etc/hosts). */
    host: z.string().min(1).optional(),
    /** TCP port that must accept a connection on `host`. */
    port: z.number().int().min(1).max(65535).optional(),
    /** SRV name (e.g. `_http._tcp.api.internal`); its targets are connected to instead of host:port. */
    srv: z.string().min(1).optional(),
    ...checkItemSettings,
  })
  .superRefine((item, context) => {
    if (item.srv) return;
    if (!item.host) context.addIssue({ code: 'custom', path: ['host'], message: 'is required without srv' });
    if (item.port === undefined) {
      context.addIssue({ code: 'custom', path: ['port'], message: 'is required without srv' });
    }
  });

export type DiscoveryCheckItem = z.infer<typeof discoveryItem>;

interface Endpoint {
  host: string;
  port: number;
}

/**
 * `discovery`: a host resolves and accepts a TCP connection on its port; or an SRV name resolves
 * and one of its targets (in priority order) accepts a connection.
 */
export const discoveryCheck = defineValidationCheck<DiscoveryCheckItem>({
  key: 'discovery',
  kind: 'discovery',
  item: discoveryItem,
  name: (item) => `discovery:${item.name}`,
  async run(item, context) {
    const host = item.host === undefined ? undefined : context.resolve(item.host);
    const notes: string[] = [];
    if (host !== undefined) {
      const addresses = await resolveHost(host);
      notes.push(`${host} resolves to ${addresses.join(', ')}`);
      if (!item.srv) {
        const reached = await connectToFirst(
          addresses.map((address) => ({ host: address, port: item.port! })),
          context,
          `${host}:${item.port}`,
        );
        return { passed: true, message: `${notes[0]}; ${formatEndpoint(reached)} accepts connections` };
      }
    }
    const srv = context.resolve(item.srv!);
    const records = await resolveSrv(srv, context);
    const endpoints = records.map((record) => ({ host: record.name, port: record.port }));
    notes.push(`${srv} → ${endpoints.map(formatEndpoint).join(', ')}`);
    const reached = await connectToFirst(endpoints, context, srv);
    return { passed: true, message: `${notes.join('; ')}; ${formatEndpoint(reached)} accepts connections` };
  },
});

async function resolveHost(host: string): Promise<string[]> {
  try {
    const addresses = await dns.lookup(host, { all: true });
    if (addresses.length === 0) throw new CheckFailure(`${host} has no A or AAAA record`);
    return addresses.map((a) => a.address);
  } catch (error) {
    if (error instanceof CheckFailure) throw error;
    throw new CheckFailure(
      `cannot resolve ${host} (${(error as NodeJS.ErrnoException).code ?? describeCause(error)})`,
    );
  }
}

/** SRV records ordered as RFC 2782 says: lowest priority first, then highest weight. */
async function resolveSrv(name: string, context: CheckContext): Promise<SrvRecord[]> {
  const resolver = new dns.Resolver({ timeout: Math.max(100, Math.floor(context.timeoutMs / 2)), tries: 2 });
  if (context.dnsServers.length > 0) resolver.setServers([...context.dnsServers]);
  const cancel = () => resolver.cancel();
  context.signal.addEventListener('abort', cancel, { once: true });
  try {
    const records = await resolver.resolveSrv(name);
    if (records.length === 0) throw new CheckFailure(`${name} has no SRV records`);
    return records.sort((a, b) => a.priority - b.priority || b.weight - a.weight);
  } catch (error) {
    if (error instanceof CheckFailure) throw error;
    throw new CheckFailure(
      `cannot resolve SRV ${name} (${(error as NodeJS.ErrnoException).code ?? describeCause(error)})`,
    );
  } finally {
    context.signal.removeEventListener('abort', cancel);
  }
}

/** Tries the endpoints in order and returns the first that accepts a TCP connection. */
async function connectToFirst(
  endpoints: Endpoint[],
  context: CheckContext,
  label: string,
): Promise<Endpoint> {
  const failures: string[] = [];
  for (const endpoint of endpoints) {
    try {
      await connectOnce(endpoint, context.signal);
      return endpoint;
    } catch (error) {
      failures.push(`${formatEndpoint(endpoint)} ${describeConnectError(error)}`);
    }
  }
  throw new CheckFailure(`${label}: ${failures.join('; ')}`);
}

function connectOnce(endpoint: Endpoint, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: endpoint.host, port: endpoint.port });
    const abort = () => socket.destroy(new Error('aborted'));
    signal.addEventListener('abort', abort, { once: true });
    const settle = (error?: Error) => {
      signal.removeEventListener('abort', abort);
      socket.destroy();
      if (error) reject(error);
      else resolve();
    };
    socket.once('connect', () => settle());
    socket.once('error', settle);
  });
}

function describeConnectError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED') return 'refused the connection (ECONNREFUSED)';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return `is unreachable (${code})`;
  return `did not accept a connection (${describeCause(error)})`;
}

function formatEndpoint(endpoint: Endpoint): string {
  return endpoint.host.includes(':')
    ? `[${endpoint.host}]:${endpoint.port}`
    : `${endpoint.host}:${endpoint.port}`;
}
