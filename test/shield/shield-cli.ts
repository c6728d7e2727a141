// Runs `materi shield …` from source with only Shield's commands registered, as src/cli/main.ts
// will once it registers them.
import { Command } from 'commander';
import { MateriError } from '../../src/errors/index.js';
import { registerShieldCommands } from '../../src/shield/index.js';

const program = new Command('materi').exitOverride();
registerShieldCommands(program);
try {
  await program.parseAsync(process.argv);
} catch (error) {
  process.stderr.write(`materi: ${(error as Error).message}\n`);
  process.exit(error instanceof MateriError ? error.exitCode : 1);
}
