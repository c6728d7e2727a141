import { Command, CommanderError } from 'commander';
import { MateriError } from '../errors/index.js';
import { registerShieldCommands } from '../shield/cli.js';
import { registerApprovalCommands } from './approve.js';
import { registerDeployCommands } from './deploy.js';
import { registerDlqCommands } from './dlq.js';
import { registerEventsCommands } from './events.js';
import { registerPlanCommands } from './plan.js';
import { registerReleaseCommands } from './releases.js';
import { registerTokenCommands } from './token.js';
import { registerUpCommand } from './up.js';
import { registerWorkersCommand } from './workers.js';

// Registration (names, options, help) must stay cheap: `materi --help` and `plan validate` load none
// of the backends. Each command's action imports its implementation when it runs
// (test/cli/lazy-loading.test.ts checks what they load).
const program = new Command('materi')
  .description('Materi Deploy: event-driven deployment coordinator (Redis Streams, Printery workers, Shield)')
  .version(process.env.npm_package_version ?? '0.1.0')
  .enablePositionalOptions()
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (text, write) => write(text) })
  .exitOverride();

registerUpCommand(program);
registerDeployCommands(program);
registerReleaseCommands(program);
registerApprovalCommands(program);
registerEventsCommands(program);
registerDlqCommands(program);
registerPlanCommands(program);
registerWorkersCommand(program);
registerShieldCommands(program);
registerTokenCommands(program);

/** Turns any failure into a one-line message and the documented exit code. */
function fail(error: unknown): never {
  if (error instanceof CommanderError) {
    process.exit(error.exitCode === 0 ? 0 : 2);
  }
  if (error instanceof MateriError) {
    process.stderr.write(`materi: ${error.message}\n`);
    process.exit(error.exitCode);
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`materi: unexpected error: ${message}\n`);
  if (process.env.MATERI_LOG_LEVEL === 'debug' && error instanceof Error)
    process.stderr.write(`${error.stack}\n`);
  process.exit(1);
}

// `materi events tail | head` closes the pipe early; that is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

try {
  await program.parseAsync(process.argv);
} catch (error) {
  fail(error);
}
