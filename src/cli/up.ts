import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { DeploymentEventPublisher } from '../bus/event-publisher.js';
import { openEventBus } from '../bus/open.js';
import { DeploymentStatus, decodeEntry } from '../events/index.js';
import { loadSettings } from '../runtime/config.js';
import { createLogger } from '../runtime/logging.js';
import { eventToJson } from './events.js';
import { announceBackend } from './shared.js';

/**
 * `materi up`. Until the orchestrator, workers and Shield exist, `--demo` shows the event
 * contract end to end: it publishes the events of one demo deployment and reads them back from
 * the streams as a third party would.
 */
export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('run the stack in one process (this build: the event-contract demo)')
    .option('--demo', 'publish a demo deployment and print its events')
    .option('--port <n>', 'HTTP port (default MATERI_PORT or 4600)')
    .action(async (options: { demo?: boolean }) => {
      process.stderr.write(
        'materi up: the orchestrator, workers and Shield are not part of this build yet; ' +
          'running the event-contract demo instead.\n',
      );
      if (!options.demo) return;
      const settings = loadSettings();
      const logger = createLogger({ name: 'up', level: settings.logLevel });
      const bus = await openEventBus(settings, { logger, source: 'materi/demo' });
      announceBackend(bus);
      try {
        const events = new DeploymentEventPublisher(bus.publisher);
        const deploymentId = `demo-${randomUUID().slice(0, 8)}`;
        const meta = { correlationId: randomUUID() };
        const services = ['api', 'web', 'worker'];
        const published = [
          await events.publishDeploymentStarted(
            {
              deploymentId,
              version: 'v2',
              environment: 'demo',
              strategy: 'rolling',
              services,
              project: 'demo',
            },
            meta,
          ),
          await events.publishStageStarted(
            { deploymentId, stage: 'api', description: 'deploy the API', services: ['api'] },
            meta,
          ),
          await events.publishStageCompleted(
            {
              deploymentId,
              stage: 'api',
              status: DeploymentStatus.SUCCESS,
              durationMs: 1200,
              services: ['api'],
            },
            meta,
          ),
          await events.publishDeploymentCompleted(
            {
              deploymentId,
              status: DeploymentStatus.SUCCESS,
              totalDurationMs: 1500,
              version: 'v2',
              environment: 'demo',
            },
            meta,
          ),
        ];
        for (const p of published) {
          const [entry] = (await bus.redis!.xrange(p.stream, p.entryId, p.entryId)) as [string, string[]][];
          process.stdout.write(
            `${p.stream} ${p.entryId} ${JSON.stringify(eventToJson(decodeEntry(entry![1])))}\n`,
          );
        }
      } finally {
        await bus.close();
      }
    });
}
