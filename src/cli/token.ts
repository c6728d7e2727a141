import { constants } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { isMap, isSeq, parseDocument, YAMLSeq } from 'yaml';
import {
  generateTokenSecret,
  parseTokensFile,
  ROLES,
  type Role,
  sha256Hex,
  TOKEN_NAME_PATTERN,
  type TokenEntry,
} from '../api/index.js';
import { BadInputError, ConfigError } from '../errors/index.js';
import { loadSettings } from '../runtime/config.js';

/**
 * Adds a token to a tokens file: the entry (name, hash, role, environments) is appended, the file
 * created with mode 0600 when absent; returns the secret, which is written nowhere. The file is
 * replaced atomically (a server reading it sees the old or the new version, never half of one),
 * keeping its comments and mode.
 */
export async function createToken(
  file: string,
  entry: { name: string; role: Role; environments?: string[] },
): Promise<string> {
  if (!TOKEN_NAME_PATTERN.test(entry.name)) {
    throw new BadInputError(
      `token name "${entry.name.slice(0, 100)}" must be 1 to 100 letters, digits, ".", "_", "@" or "-", starting with a letter or digit`,
    );
  }
  if (!ROLES.includes(entry.role)) {
    throw new BadInputError(`--role must be viewer, deployer or admin, got "${entry.role}"`);
  }
  if (entry.environments && entry.role !== 'deployer') {
    throw new BadInputError('--env limits a deployer token: give it with --role deployer only');
  }
  let text = '';
  let mode = 0o600;
  try {
    text = await readFile(file, 'utf8');
    mode = (await stat(file)).mode & 0o777;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ConfigError(
        `${file}: cannot read the tokens file (${(error as NodeJS.ErrnoException).code})`,
      );
    }
  }
  const existing = parseTokensFile(text, file);
  if (existing.some((t) => t.name === entry.name)) {
    throw new BadInputError(`${file} already has a token named "${entry.name}" (names are unique)`);
  }
  const secret = generateTokenSecret();
  const added: TokenEntry = {
    name: entry.name,
    sha256: sha256Hex(secret),
    role: entry.role,
    ...(entry.environments ? { environments: [...new Set(entry.environments)] } : {}),
  };
  const doc = parseDocument(text.trim() === '' ? 'tokens: []\n' : text);
  if (!isMap(doc.contents)) throw new ConfigError(`${file}: expected a mapping with a "tokens" list`);
  let list = doc.get('tokens');
  if (!isSeq(list)) {
    list = new YAMLSeq();
    doc.set('tokens', list);
  }
  const seq = list as YAMLSeq;
  seq.flow = false;
  seq.add(doc.createNode(added));
  const updated = doc.toString();
  // What is written must read back as a valid file (the server would refuse it otherwise).
  parseTokensFile(updated, file);
  await writeAtomically(file, updated, mode);
  return secret;
}

async function writeAtomically(file: string, text: string, mode: number): Promise<void> {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  // O_EXCL: never write through a file (or link) someone else put there.
  const handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await handle.writeFile(text);
    await handle.chmod(mode);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temporary, file);
}

/** `materi token create`: a named token with a role, stored hashed in the tokens file. */
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
    .action(async (name: string, options: { role: string; env?: string[]; file?: string }) => {
      const file = options.file ?? loadSettings().tokensFile;
      if (!file) throw new BadInputError('no tokens file: give --file or set MATERI_TOKENS_FILE');
      const secret = await createToken(file, {
        name,
        role: options.role as Role,
        environments: options.env,
      });
      process.stdout.write(`${secret}\n`);
      process.stderr.write(
        `materi: token "${name}" (${options.role}${options.env ? ` for ${options.env.join(', ')}` : ''}) added to ${file}; this is the only time its secret is shown\n`,
      );
    });
}
