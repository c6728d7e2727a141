import type { Command } from 'commander';
import { COMPONENTS } from '../runtime/components.js';

/** `materi up` and `materi worker`; what they do is in up-actions.ts, loaded when one runs. */
export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description(
      'run the whole stack in one process: orchestrator, the four Printery workers, Shield and the dashboard',
    )
    .option(
      '--demo',
      'also start three local demo services and run a demo deployment of v2 (succeeds) and v3 (rolled back)',
    )
    .option('--port <n>', 'HTTP port (default MATERI_PORT or 4600) on the address MATERI_HOST (127.0.0.1)')
    .action(async (options: { demo?: boolean; port?: string }) =>
      (await import('./up-actions.js')).up(options),
    );

  program
    .command('worker')
    .description('run one component in this process (scale out by starting more)')
    .argument('<name>', COMPONENTS.join(' | '))
    .option('--concurrency <n>', 'messages handled at once (default: the group default)')
    .option(
      '--port <n>',
      'serve /healthz, /readyz and /metrics (and the component API) on this port, on MATERI_HOST',
    )
    .action(async (name: string, options: { concurrency?: string; port?: string }) =>
      (await import('./up-actions.js')).worker(name, options),
    );
}
