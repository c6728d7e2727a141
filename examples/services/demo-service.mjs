#!/usr/bin/env node
// A tiny HTTP service for examples/local.yaml and the tests of the `local` provider.
//
//   node demo-service.mjs <name> <version> [port]      (PORT from the environment otherwise)
//
// GET /health and /ready answer {"status":"ok"}, GET / answers the name and version, GET /metrics
// serves Prometheus text. Versions containing "crash" exit at once (a build that cannot start);
// versions containing "unhealthy" start but answer 500 on /health after the first probe, so the
// health gate fails and the deployment rolls back.
import { createServer } from 'node:http';

const [name = 'service', version = process.env.MATERI_VERSION ?? 'dev', portArg] = process.argv.slice(2);
const port = Number(portArg ?? process.env.PORT ?? 0);

if (version.includes('crash')) {
  console.error(`${name} ${version}: cannot start: missing configuration key "database.url"`);
  process.exit(1);
}

// The demo (`materi up --demo`) marks some versions as faulty releases this way.
const unhealthy =
  version.includes('unhealthy') || (process.env.DEMO_UNHEALTHY_VERSIONS ?? '').split(',').includes(version);

let requests = 0;
let healthProbes = 0;
const server = createServer((req, res) => {
  requests++;
  const json = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  switch (req.url) {
    case '/health':
      healthProbes++;
      if (unhealthy && healthProbes > 1) return json(500, { status: 'failing', version });
      return json(200, { status: 'ok', service: name, version });
    case '/ready':
      return json(200, { status: 'ok' });
    case '/metrics':
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      return res.end(
        `# HELP http_requests_total Requests served.\n# TYPE http_requests_total counter\nhttp_requests_total{service="${name}"} ${requests}\n`,
      );
    case '/':
      return json(200, { service: name, version, pid: process.pid });
    default:
      return json(404, { error: 'not found' });
  }
});

server.listen(port, '127.0.0.1', () => {
  console.log(`${name} ${version} listening on http://127.0.0.1:${server.address().port}`);
});
server.on('error', (error) => {
  console.error(`${name} ${version}: ${error.message}`);
  process.exit(1);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    console.log(`${name} ${version} stopping (${signal})`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
