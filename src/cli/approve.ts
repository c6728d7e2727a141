import type { Command } from 'commander';
import { apiRequest } from './client.js';
import { whoAmI } from './shared.js';

const EXIT_CODES =
  '\nExit codes: 0 answered, 1 unknown deployment, nothing to answer (409) or no server,\n2 bad input.';

/**
 * `materi approve <id>` and `materi reject <id>`: answer a deployment that waits for a person (an
 * approval the plan asks for, or a pause after an inconclusive health verdict), through the API.
 */
export function registerApprovalCommands(program: Command): void {
  for (const [verb, description, comment, done] of [
    [
      'approve',
      'approve a deployment that waits for an approval (or a paused one): it goes on',
      'why (recorded in approval:completed)',
      'approved',
    ],
    [
      'reject',
      'reject a deployment that waits for an approval (or a paused one): it fails',
      'why (recorded in approval:completed and in the failure reason)',
      'rejected',
    ],
  ] as const) {
    program
      .command(verb)
      .description(description)
      .argument('<id>', 'deployment id')
      .option('--comment <text>', comment)
      .option('--json', 'print JSON')
      .addHelpText('after', EXIT_CODES)
      .action(async (id: string, options: { comment?: string; json?: boolean }) => {
        // Imported here: settings parsing loads zod and pino, which registration must not.
        const { loadSettings } = await import('../runtime/config.js');
        const result = await apiRequest<{ id: string; status: string }>(
          loadSettings(),
          'POST',
          `/api/deployments/${encodeURIComponent(id)}/${verb}`,
          { by: whoAmI(), ...(options.comment !== undefined ? { comment: options.comment } : {}) },
        );
        process.stdout.write(
          options.json ? `${JSON.stringify(result)}\n` : `${done} ${result.id} (${result.status})\n`,
        );
      });
  }
}
