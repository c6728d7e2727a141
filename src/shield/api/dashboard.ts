import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { ConfigError, NotFoundError } from '../../errors/index.js';

/**
 * The dashboard's Content-Security-Policy: only this origin's scripts, styles and connections,
 * no inline code, no framing. Event data is rendered with textContent, and this is the second wall.
 */
export const DASHBOARD_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * Where the dashboard's files are: `web/` beside the Shield module (`src/shield/web` in a checkout,
 * `dist/shield/web` in the build, which `npm run build` copies there), else the checkout's
 * `src/shield/web` (a `dist/` built by tsc alone).
 */
export function defaultWebRoot(): string {
  const candidates = [
    fileURLToPath(new URL('../web/', import.meta.url)),
    fileURLToPath(new URL('../../../src/shield/web/', import.meta.url)),
  ];
  const found = candidates.find((dir) => existsSync(path.join(dir, 'index.html')));
  if (!found) {
    throw new ConfigError(`shield dashboard: no index.html in ${candidates.join(' or ')}`);
  }
  return found;
}

interface StaticFile {
  body: Buffer;
  type: string;
}

/** Loads the dashboard's files once; only these names are ever served (no paths from requests). */
function loadFiles(root: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  for (const name of readdirSync(root)) {
    const type = CONTENT_TYPES[path.extname(name)];
    if (type) files.set(name, { body: readFileSync(path.join(root, name)), type });
  }
  if (!files.has('index.html')) throw new ConfigError(`shield dashboard: no index.html in ${root}`);
  return files;
}

function serve(reply: FastifyReply, file: StaticFile): FastifyReply {
  return reply
    .header('content-type', file.type)
    .header('content-security-policy', DASHBOARD_CSP)
    .header('cache-control', 'no-cache')
    .send(file.body);
}

/**
 * The dashboard: `index.html` for `/`, `/history`, `/environments`, `/operations` and `/deployments/<id>` (routes of
 * the page itself), and its scripts and styles under `/static/`. Public: the page holds no data;
 * its API calls carry the token.
 */
export function registerDashboardRoutes(app: FastifyInstance, webRoot = defaultWebRoot()): void {
  const files = loadFiles(webRoot);
  const index = files.get('index.html')!;
  const page = { config: { access: 'public' as const }, schema: { hide: true } };
  for (const url of ['/', '/history', '/environments', '/operations', '/deployments/:id']) {
    app.get(url, page, async (_request, reply) => serve(reply, index));
  }
  app.get('/static/:file', page, async (request, reply) => {
    const name = (request.params as { file: string }).file;
    const file = name === 'index.html' ? undefined : files.get(name);
    if (!file) throw new NotFoundError(`no dashboard file "${name.slice(0, 60)}"`);
    return serve(reply, file);
  });
}
