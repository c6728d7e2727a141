import { ConfigError } from '../../errors/index.js';
import { expandReferences } from '../../runtime/references.js';
import { VERSION_PATTERN } from '../plan/load.js';
import type { ProviderContext } from './types.js';

/** Settings with every `${NAME}` resolved, and the resolved secret values to keep out of output. */
export interface ResolvedSettings<T> {
  value: T;
  /** Values that came from the environment lookup; {@link maskSecrets} hides them. */
  secrets: string[];
}

/**
 * Resolves `${NAME}` references in provider settings at the moment of use. `${VERSION}` is the
 * version the action installs, `${PREVIOUS_VERSION}` the one before; `${ENVIRONMENT}`,
 * `${PROJECT}`, `${DEPLOYMENT_ID}` and `${STAGE}` come from the deployment; `extra` adds
 * provider-specific names (`${PORT}`, `${HOOK_ID}`). Any other name is looked up in `context.env`
 * and counts as a secret. A missing name throws {@link ConfigError} naming it, never a value.
 */
export function resolveSettings<T>(
  value: T,
  context: Pick<ProviderContext, 'deployment' | 'env' | 'stage'>,
  version: string | undefined,
  extra: Record<string, string | undefined> = {},
): ResolvedSettings<T> {
  const { deployment } = context;
  const builtIns: Record<string, string | undefined> = {
    VERSION: version,
    PREVIOUS_VERSION: deployment.previousVersion,
    ENVIRONMENT: deployment.environment,
    PROJECT: deployment.project,
    DEPLOYMENT_ID: deployment.id,
    STAGE: context.stage.name,
    ...extra,
  };
  const secrets = new Set<string>();
  const resolved = expandReferences(
    value,
    (name) => {
      if (name in builtIns) {
        const builtIn = builtIns[name];
        if (builtIn !== undefined) return builtIn;
        const why = name.endsWith('VERSION') ? ' (no previous version is known)' : '';
        throw new ConfigError(`stage ${context.stage.name} provider: \${${name}} has no value here${why}`);
      }
      const found = context.env(name);
      if (found !== undefined) secrets.add(found);
      return found;
    },
    { where: `stage ${context.stage.name} provider` },
  );
  return { value: resolved, secrets: [...secrets] };
}

/** Checks a version before it reaches a command line or an API. */
export function checkVersion(version: string, what: string): string {
  if (!VERSION_PATTERN.test(version))
    throw new ConfigError(`${what} ${JSON.stringify(version)} must match [A-Za-z0-9][A-Za-z0-9._-]*`);
  return version;
}

/** Replaces every secret value in a text (output, an API's error message) with `***`. */
export function maskSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (secret.length >= 4) out = out.split(secret).join('***');
  }
  return out;
}
