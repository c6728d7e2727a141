import { connect } from 'node:net';
import { z } from 'zod';
import { describeCause } from '../../../errors/index.js';
import { defineDependencyProbe, dependencySettings, ProbeFailure } from '../probe.js';

const tcpItem = z.strictObject({
  type: z.literal('tcp'),
  ...dependencySettings,
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
});

export type TcpDependency = z.infer<typeof tcpItem>;

/** `tcp`: the host accepts a TCP connection on the port. */
export const tcpProbe = defineDependencyProbe<TcpDependency>({
  type: 'tcp',
  item: tcpItem,
  async probe(item, context) {
    const host = context.resolve(item.host);
    const where = `${host}:${item.port}`;
    await new Promise<void>((resolve, reject) => {
      const socket = connect({ host, port: item.port });
      const abort = () => socket.destroy(new Error('aborted'));
      context.signal.addEventListener('abort', abort, { once: true });
      const settle = (error?: Error) => {
        context.signal.removeEventListener('abort', abort);
        socket.destroy();
        if (error) reject(error);
        else resolve();
      };
      socket.once('connect', () => settle());
      socket.once('error', settle);
    }).catch((error: unknown) => {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ECONNREFUSED') throw new ProbeFailure(`${where} refused the connection (ECONNREFUSED)`);
      if (code === 'ENOTFOUND') throw new ProbeFailure(`cannot resolve ${host} (ENOTFOUND)`);
      throw new ProbeFailure(`cannot connect to ${where}: ${describeCause(error)}`);
    });
    return { healthy: true, message: `${where} accepts connections` };
  },
});
