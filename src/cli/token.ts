import type { Command } from 'commander';
import type { Role } from '../api/index.js';

/**
 * Adds a token to a tokens file: the entry (name, hash, role, environments) is appended, the file
 * created with mode 0600 when absent; returns the secret, which is written nowhere. The file is
 * replaced atomically (a server reading it sees the old or the new version, never half of one),
 * keeping its comments and mode. The work is in token-actions.ts, loaded on the first call.
 */
export async function createToken(
  file: string,
  entry: { name: string; role: Role; environments?: string[] },
): Promise<string> {
  return (await import('./token-actions.js')).addToken(file, entry);
}

/**
 * `materi token create`: a named token with a role, stored hashed in the tokens file. What it does is
 * in token-actions.ts, loaded when it runs.
 */
export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('manage the named tokens of the tokens file');
  token
    .command('create')
    .description('add a token to the tokens file (stored as its SHA-256) and print its secret once on stdout')
    .argument('<name>', 'the token name, recorded as the actor of every write it makes')
    .requiredOption('--role <role>', 'viewer, deployer or admin')
    .option(
      '--env <environment>',
      'deployer only: limit it to this environment (repeat for more)',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option('--file <path>', 'the tokens file (default MATERI_TOKENS_FILE)')
    .addHelpText(
      'after',
      '\nThe secret is shown once and stored nowhere: give it to its holder now.\nA running server reads the file again when it changes.',
    )
    .action(async (name: string, options: { role: string; env?: string[]; file?: string }) =>
      (await import('./token-actions.js')).create(name, options),
    );
}
