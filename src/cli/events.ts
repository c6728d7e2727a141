import type { Command } from 'commander';
import { BadInputError } from '../errors/index.js';
import type { TailOptions } from './events-actions.js';
import { collect } from './shared.js';

/** `materi events …`; what the commands do is in events-actions.ts, loaded when one runs. */
export function registerEventsCommands(program: Command): void {
  const events = program.command('events').description('publish and read deployment events');

  events
    .command('publish')
    .description('publish one event; prints its event id')
    .argument('<type>', 'event type, e.g. deployment:started or deployment:stage:vercel:started')
    .requiredOption('--data <json>', 'payload as JSON in the proto3 JSON mapping (lowerCamelCase fields)')
    .option('--correlation-id <id>', 'correlation id (default: a new UUID)')
    .option('--deployment-id <id>', 'deployment id (default: data.deploymentId)')
    .option('--json', 'print the stored event as JSON')
    .action(
      async (
        type: string,
        options: { data: string; correlationId?: string; deploymentId?: string; json?: boolean },
      ) => (await import('./events-actions.js')).publish(type, options),
    );

  events
    .command('tail')
    .description('print events as they are published, one a line, until Ctrl-C')
    .option(
      '--type <type...>',
      'only these types or patterns (e.g. deployment:stage:*:completed)',
      collect,
      [],
    )
    .option('--correlation-id <id>', 'only events of this correlation id')
    .option('--from-start', 'print the events already in the streams first')
    .option('--json', 'print NDJSON (one JSON object per event)')
    .option('--limit <n>', 'stop after n events', (v) => positiveInt('--limit', v))
    .action(async (options: TailOptions) => (await import('./events-actions.js')).tail(options));
}

function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new BadInputError(`${name} must be a positive integer, got "${value}"`);
  return n;
}
