import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { parse } from 'yaml';
import { ConfigError } from '../errors/index.js';

/**
 * What a token may do: `viewer` reads; `deployer` also deploys, cancels, approves, rejects and
 * rolls back (in its `environments` only, when listed); `admin` does everything, including the
 * dead-letter replay and deploying into a frozen environment.
 */
export type Role = 'viewer' | 'deployer' | 'admin';

export const ROLES: readonly Role[] = ['viewer', 'deployer', 'admin'];

/** Who a request authenticated as: a named token and what it allows. */
export interface Identity {
  /** The token's name: the actor recorded by every write it makes. */
  name: string;
  role: Role;
  /** For a deployer: the only environments it may act on. Absent: every environment. */
  environments?: readonly string[];
}

/** A token of the tokens file (or of a legacy variable): its identity and the SHA-256 of its secret. */
export interface TokenEntry extends Identity {
  /** Lowercase hex SHA-256 of the secret. */
  sha256: string;
}

/** The name a token may have: letters, digits, `.`, `_`, `@`, `-` (it is shown in records and events). */
export const TOKEN_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$/;
const ENVIRONMENT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;
const ENTRY_FIELDS = new Set(['name', 'sha256', 'role', 'environments']);

/** The names the two legacy variables get: `MATERI_API_TOKEN` (admin) and `MATERI_VIEWER_TOKEN` (viewer). */
export const LEGACY_API_TOKEN_NAME = 'api-token';
export const LEGACY_VIEWER_TOKEN_NAME = 'viewer-token';

export function sha256Hex(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** A new secret: `mt_` and 32 random bytes in base64url (256 bits). */
export function generateTokenSecret(): string {
  return `mt_${randomBytes(32).toString('base64url')}`;
}

/**
 * Reads a tokens file's text: `tokens: [{ name, sha256, role, environments? }]`. Strict: an unknown
 * field, a bad value or a duplicate name throws a one-line {@link ConfigError} naming the file,
 * the entry and the field.
 */
export function parseTokensFile(text: string, file: string): TokenEntry[] {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (error) {
    throw new ConfigError(`${file}: not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return [];
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError(`${file}: expected a mapping with a "tokens" list`);
  }
  const unknown = Object.keys(doc).filter((key) => key !== 'tokens');
  if (unknown.length > 0) {
    throw new ConfigError(`${file}: unknown field "${unknown[0]}" (expected only "tokens")`);
  }
  const list = (doc as { tokens?: unknown }).tokens;
  if (list === null || list === undefined) return [];
  if (!Array.isArray(list)) throw new ConfigError(`${file}: "tokens" must be a list`);
  const entries: TokenEntry[] = [];
  const names = new Set<string>();
  const hashes = new Map<string, string>();
  list.forEach((raw, index) => {
    const entry = parseEntry(raw, `${file}: tokens[${index}]`);
    const where = `${file}: tokens[${index}] (${entry.name})`;
    if (names.has(entry.name)) throw new ConfigError(`${where}: name: duplicate name "${entry.name}"`);
    const twin = hashes.get(entry.sha256);
    if (twin) throw new ConfigError(`${where}: sha256: the same secret as token "${twin}"`);
    names.add(entry.name);
    hashes.set(entry.sha256, entry.name);
    entries.push(entry);
  });
  return entries;
}

function parseEntry(raw: unknown, at: string): TokenEntry {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`${at}: expected a mapping with name, sha256 and role`);
  }
  const fields = raw as Record<string, unknown>;
  const name = fields.name;
  if (typeof name !== 'string' || !TOKEN_NAME_PATTERN.test(name)) {
    throw new ConfigError(
      `${at}: name: must be 1 to 100 letters, digits, ".", "_", "@" or "-", starting with a letter or digit`,
    );
  }
  const where = `${at} (${name})`;
  const extra = Object.keys(fields).find((key) => !ENTRY_FIELDS.has(key));
  if (extra !== undefined) {
    throw new ConfigError(`${where}: unknown field "${extra}" (expected name, sha256, role, environments)`);
  }
  const sha256 = fields.sha256;
  if (typeof sha256 !== 'string' || !SHA256_PATTERN.test(sha256.toLowerCase())) {
    throw new ConfigError(
      `${where}: sha256: must be the 64 hex digits of the secret's SHA-256 (materi token create writes it)`,
    );
  }
  const role = fields.role;
  if (typeof role !== 'string' || !ROLES.includes(role as Role)) {
    throw new ConfigError(`${where}: role: must be viewer, deployer or admin`);
  }
  const entry: TokenEntry = { name, sha256: sha256.toLowerCase(), role: role as Role };
  if (fields.environments !== undefined) {
    if (role !== 'deployer') {
      throw new ConfigError(`${where}: environments: only a deployer token is limited to environments`);
    }
    const environments = fields.environments;
    if (
      !Array.isArray(environments) ||
      environments.length === 0 ||
      !environments.every((e) => typeof e === 'string' && ENVIRONMENT_PATTERN.test(e))
    ) {
      throw new ConfigError(
        `${where}: environments: must be a non-empty list of environment names (omit it for every environment)`,
      );
    }
    entry.environments = [...new Set(environments as string[])];
  }
  return entry;
}

/** Where the tokens come from: the tokens file and the two legacy variables. */
export interface TokenSources {
  /** `MATERI_TOKENS_FILE`. */
  tokensFile?: string;
  /** `MATERI_API_TOKEN`: an admin token named `api-token`. */
  apiToken?: string;
  /** `MATERI_VIEWER_TOKEN`: a viewer token named `viewer-token`. */
  viewerToken?: string;
}

/**
 * The tokens a server knows. The file is read at construction (a problem throws a ConfigError) and
 * again whenever it changed ({@link refresh}, called before each authentication: one `stat`): a
 * file that became unreadable or invalid is reported through `onReloadError` and the tokens read
 * before stay in force until it is fixed.
 */
export class TokenRegistry {
  private entries: TokenEntry[] = [];
  private readonly legacy: TokenEntry[] = [];
  private fileSignature: string | undefined;
  /** The version of the file whose reload failed (reported once, not read again). */
  private failedSignature: string | undefined;

  constructor(
    private readonly sources: TokenSources,
    private readonly onReloadError: (message: string) => void = () => {},
  ) {
    if (sources.apiToken) {
      this.legacy.push({ name: LEGACY_API_TOKEN_NAME, role: 'admin', sha256: sha256Hex(sources.apiToken) });
    }
    if (sources.viewerToken) {
      this.legacy.push({
        name: LEGACY_VIEWER_TOKEN_NAME,
        role: 'viewer',
        sha256: sha256Hex(sources.viewerToken),
      });
    }
    if (sources.tokensFile) {
      const loaded = this.load(sources.tokensFile);
      if (loaded instanceof Error) throw loaded;
    }
  }

  /** Whether writes need a token: a tokens file or `MATERI_API_TOKEN` is configured. */
  get writesNeedToken(): boolean {
    return this.sources.tokensFile !== undefined || this.sources.apiToken !== undefined;
  }

  /** Whether reads need a token: a tokens file or `MATERI_VIEWER_TOKEN` is configured. */
  get readsNeedToken(): boolean {
    return this.sources.tokensFile !== undefined || this.sources.viewerToken !== undefined;
  }

  /** Reads the tokens file again when it changed since it was last read. */
  refresh(): void {
    if (this.sources.tokensFile) this.load(this.sources.tokensFile);
  }

  /** The token whose secret this is. Every known hash is compared, in constant time. */
  identify(secret: string): Identity | undefined {
    const given = Buffer.from(sha256Hex(secret), 'hex');
    let found: TokenEntry | undefined;
    for (const entry of this.all()) {
      if (timingSafeEqual(given, Buffer.from(entry.sha256, 'hex')) && !found) found = entry;
    }
    return found && identityOf(found);
  }

  /** The token of that name, with its hash (sessions are signed over it, so a new secret ends them). */
  byName(name: string): TokenEntry | undefined {
    return this.all().find((entry) => entry.name === name);
  }

  private all(): TokenEntry[] {
    return [...this.legacy, ...this.entries];
  }

  /** Loads the file when its signature changed; returns the error of a failed load. */
  private load(file: string): Error | undefined {
    let signature: string;
    try {
      const stat = statSync(file);
      signature = `${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;
    } catch (error) {
      return this.failed('missing', new ConfigError(`${file}: cannot read the tokens file (${code(error)})`));
    }
    if (signature === this.fileSignature || signature === this.failedSignature) return undefined;
    try {
      const entries = parseTokensFile(readFileSync(file, 'utf8'), file);
      const clash = entries.find((entry) => this.legacy.some((l) => l.name === entry.name));
      if (clash) {
        throw new ConfigError(
          `${file}: token "${clash.name}": name: taken by ${clash.name === LEGACY_API_TOKEN_NAME ? 'MATERI_API_TOKEN' : 'MATERI_VIEWER_TOKEN'}`,
        );
      }
      this.entries = entries;
      this.fileSignature = signature;
      return undefined;
    } catch (error) {
      const problem =
        error instanceof ConfigError
          ? error
          : new ConfigError(`${file}: cannot read the tokens file (${code(error)})`);
      return this.failed(signature, problem);
    }
  }

  /** Reports a failed reload once per version of the file (at construction, the caller throws). */
  private failed(signature: string, error: ConfigError): ConfigError {
    if (this.fileSignature !== undefined && this.failedSignature !== signature) {
      this.onReloadError(`${error.message}; the tokens read before stay in force`);
    }
    this.failedSignature = signature;
    return error;
  }
}

/** A token's identity, without its hash. */
export function identityOf(entry: TokenEntry): Identity {
  return {
    name: entry.name,
    role: entry.role,
    ...(entry.environments ? { environments: entry.environments } : {}),
  };
}

function code(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
}
