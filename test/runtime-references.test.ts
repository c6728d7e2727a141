import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/errors/index.js';
import { environmentLookup, expandReferences, findReferences } from '../src/runtime/references.js';

describe('${NAME} references', () => {
  const value = { url: 'postgres://${DB_USER}:${DB_PASS}@db/app', list: ['${REGION}', 'plain'], n: 3 };

  it('finds every referenced name once', () => {
    expect(findReferences({ ...value, again: '${DB_USER}' }).sort()).toEqual([
      'DB_PASS',
      'DB_USER',
      'REGION',
    ]);
  });

  it('expands references deeply without touching other values', () => {
    const env = environmentLookup({ DB_USER: 'u', DB_PASS: 'p', REGION: 'eu' });
    expect(expandReferences(value, env)).toEqual({
      url: 'postgres://u:p@db/app',
      list: ['eu', 'plain'],
      n: 3,
    });
    expect(value.url).toContain('${DB_USER}');
  });

  it('names the missing variable and where it was used, never a value', () => {
    const env = environmentLookup({ DB_USER: 'u', DB_PASS: 'secret-value' });
    let error: unknown;
    try {
      expandReferences(value, env, { where: 'plan.yaml' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toBe('plan.yaml: list[0]: ${REGION} is not set');
  });

  it('can keep unknown references for a later stage to resolve', () => {
    expect(
      expandReferences('${VERSION}/${SECRET}', (n) => (n === 'VERSION' ? 'v2' : undefined), {
        missing: 'keep',
      }),
    ).toBe('v2/${SECRET}');
  });

  it('treats an empty variable as unset', () => {
    expect(() => expandReferences('${EMPTY}', environmentLookup({ EMPTY: '' }))).toThrow(
      /\$\{EMPTY\} is not set/,
    );
  });
});
