import { isIP } from 'node:net';
import { ConfigError } from '../errors/index.js';

/**
 * True for addresses only this machine can reach: `localhost`, 127.0.0.0/8, `::1` (and
 * 127.0.0.0/8 written as an IPv4-mapped IPv6 address).
 */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return mapped !== null && mapped[1]!.startsWith('127.');
  }
  return false;
}

/** True for the wildcard addresses that listen on every interface. */
function isWildcard(host: string): boolean {
  return ['0.0.0.0', '::', '[::]', '0:0:0:0:0:0:0:0'].includes(host.trim().toLowerCase());
}

/**
 * The base URL a client on this machine uses for a server listening on `host`: the wildcard
 * addresses are reached through loopback (`0.0.0.0` → 127.0.0.1, `::` → [::1]); any other address
 * is used as it is.
 */
export function localServerUrl(host: string, port: number): string {
  const h = host.trim();
  if (isWildcard(h)) return `http://${h.includes(':') ? '[::1]' : '127.0.0.1'}:${port}`;
  const bare = h.replace(/^\[(.*)\]$/, '$1');
  return `http://${isIP(bare) === 6 ? `[${bare}]` : bare}:${port}`;
}

/**
 * Refuses to serve the API beyond this machine without a token: a non-loopback listen address
 * needs `MATERI_API_TOKEN` or `MATERI_TOKENS_FILE`, or anyone who reaches the port could deploy.
 * Throws {@link ConfigError} (exit 2) with a one-line message naming the setting.
 */
export function checkListenAddress(settings: { host: string; apiToken?: string; tokensFile?: string }): void {
  if (isLoopbackHost(settings.host) || settings.apiToken || settings.tokensFile) return;
  throw new ConfigError(
    `MATERI_HOST=${settings.host} exposes the API beyond this machine without a token: set MATERI_API_TOKEN or MATERI_TOKENS_FILE`,
  );
}
