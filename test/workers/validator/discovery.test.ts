import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckStatus } from '../../../src/events/index.js';
import { runValidation, type ValidationCheckOutcome } from '../../../src/workers/validator/index.js';
import { freePort } from './registry-harness.js';

interface SrvAnswer {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

/**
 * A tiny authoritative DNS server over UDP that answers SRV questions from a table and NXDOMAIN
 * for anything else, so SRV discovery runs through node's real resolver (c-ares).
 */
async function startDnsServer(
  records: Record<string, SrvAnswer[]>,
): Promise<{ address: string; close(): void }> {
  const socket: Socket = createSocket('udp4');
  socket.on('message', (query, peer) => {
    let offset = 12;
    const labels: string[] = [];
    while (query[offset]! > 0) {
      const length = query[offset]!;
      labels.push(query.subarray(offset + 1, offset + 1 + length).toString());
      offset += length + 1;
    }
    const question = query.subarray(12, offset + 5);
    const type = query.readUInt16BE(offset + 1);
    const answers = type === 33 ? records[labels.join('.').toLowerCase()] : undefined;
    const header = Buffer.alloc(12);
    header.writeUInt16BE(query.readUInt16BE(0), 0);
    header.writeUInt16BE(answers ? 0x8580 : 0x8583, 2); // response, authoritative, NOERROR / NXDOMAIN
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers?.length ?? 0, 6);
    const rrs = (answers ?? []).map((answer) => {
      const target = Buffer.concat([
        ...answer.target
          .split('.')
          .map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label)])),
        Buffer.from([0]),
      ]);
      const rdata = Buffer.alloc(6);
      rdata.writeUInt16BE(answer.priority, 0);
      rdata.writeUInt16BE(answer.weight, 2);
      rdata.writeUInt16BE(answer.port, 4);
      const fixed = Buffer.alloc(12);
      fixed.writeUInt16BE(0xc00c, 0); // name: pointer to the question
      fixed.writeUInt16BE(33, 2);
      fixed.writeUInt16BE(1, 4);
      fixed.writeUInt32BE(30, 6);
      fixed.writeUInt16BE(rdata.length + target.length, 10);
      return Buffer.concat([fixed, rdata, target]);
    });
    socket.send(Buffer.concat([header, question, ...rrs]), peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { address: `127.0.0.1:${socket.address().port}`, close: () => socket.close() };
}

let listener: Server;
let openPort: number;
let closedPort: number;
let dns: { address: string; close(): void };

beforeAll(async () => {
  listener = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  openPort = (listener.address() as { port: number }).port;
  closedPort = await freePort();
  dns = await startDnsServer({
    '_http._tcp.api.materi.test': [
      { priority: 10, weight: 5, port: closedPort, target: 'localhost' },
      { priority: 20, weight: 5, port: openPort, target: 'localhost' },
    ],
    '_http._tcp.down.materi.test': [{ priority: 10, weight: 5, port: closedPort, target: 'localhost' }],
  });
});

afterAll(async () => {
  dns?.close();
  await new Promise((resolve) => listener.close(resolve));
});

async function discover(item: Record<string, unknown>): Promise<ValidationCheckOutcome> {
  const outcome = await runValidation({ timeoutMs: 3000, discovery: [item] }, { dnsServers: [dns.address] });
  expect(outcome.checks, outcome.message).toHaveLength(1);
  return outcome.checks[0]!;
}

describe('discovery check', () => {
  it('passes when the host resolves and the port accepts a connection', async () => {
    const check = await discover({ name: 'api-internal', host: 'localhost', port: openPort });
    expect(check).toMatchObject({
      name: 'discovery:api-internal',
      kind: 'discovery',
      status: CheckStatus.PASSED,
    });
    expect(check.message).toMatch(
      new RegExp(`^localhost resolves to .*127\\.0\\.0\\.1.*; .+:${openPort} accepts connections$`),
    );
  });

  it('fails when the port refuses the connection', async () => {
    const check = await discover({ name: 'api-internal', host: 'localhost', port: closedPort });
    expect(check.status).toBe(CheckStatus.FAILED);
    expect(check.message).toContain(`localhost:${closedPort}: `);
    expect(check.message).toContain(`127.0.0.1:${closedPort} refused the connection (ECONNREFUSED)`);
  });

  it('fails when the host name does not resolve', async () => {
    const check = await discover({ name: 'ghost', host: 'ghost.materi.invalid', port: 80 });
    expect(check.status).toBe(CheckStatus.FAILED);
    expect(check.message).toBe('cannot resolve ghost.materi.invalid (ENOTFOUND)');
  });

  it('connects to SRV targets in priority order and passes on the first that accepts', async () => {
    const check = await discover({ name: 'api-srv', srv: '_http._tcp.api.materi.test' });
    expect(check.status, check.message).toBe(CheckStatus.PASSED);
    expect(check.message).toBe(
      `_http._tcp.api.materi.test → localhost:${closedPort}, localhost:${openPort}; localhost:${openPort} accepts connections`,
    );
  });

  it('fails when no SRV target accepts a connection', async () => {
    const check = await discover({ name: 'down', srv: '_http._tcp.down.materi.test' });
    expect(check.message).toBe(
      `_http._tcp.down.materi.test: localhost:${closedPort} refused the connection (ECONNREFUSED)`,
    );
  });

  it('fails when the SRV name does not exist', async () => {
    const check = await discover({ name: 'none', srv: '_http._tcp.none.materi.test' });
    expect(check.message).toBe('cannot resolve SRV _http._tcp.none.materi.test (ENOTFOUND)');
  });

  it('rejects an item with neither srv nor host and port, naming the field', async () => {
    const outcome = await runValidation({ discovery: [{ name: 'x', port: 80 }] });
    expect(outcome.message).toBe('invalid validation spec: discovery[0].host: is required without srv');
  });
});
