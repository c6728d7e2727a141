/**
 * What `materi token create` does when it runs; token.ts registers it.
 *
 * @module
 */
import { constants } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
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

/** What {@link createToken} (token.ts) does. */
export async function addToken(
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

/** `materi token create <name>`: prints the secret once on stdout. */
export async function create(
  name: string,
  options: { role: string; env?: string[]; file?: string },
): Promise<void> {
  const file = options.file ?? loadSettings().tokensFile;
  if (!file) throw new BadInputError('no tokens file: give --file or set MATERI_TOKENS_FILE');
  const secret = await addToken(file, {
    name,
    role: options.role as Role,
    environments: options.env,
  });
  process.stdout.write(`${secret}\n`);
  process.stderr.write(
    `materi: token "${name}" (${options.role}${options.env ? ` for ${options.env.join(', ')}` : ''}) added to ${file}; this is the only time its secret is shown\n`,
  );
}
