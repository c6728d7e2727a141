import { z } from 'zod';
import { checkItemSettings, defineValidationCheck } from '../check.js';
import { describeEnvSource, envSourceSchema, readDefinedVariables } from '../env/sources.js';

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const envItem = z.strictObject({
  /** Service whose variables these are; names the result (`env:<service>:<source type>`). */
  service: z.string().min(1).optional(),
  /** Where the variables are defined. @defaultValue `{ type: 'process' }` */
  source: envSourceSchema.optional(),
  /** Names that must be defined and non-empty. */
  required: z.array(z.string().regex(VARIABLE_NAME, 'must be a variable name')).min(1),
  ...checkItemSettings,
});

export type EnvCheckItem = z.infer<typeof envItem>;

/**
 * `env`: every required variable is defined and non-empty in its source (the worker's
 * environment, a dotenv file, a Vercel project, a Railway service). Messages name the missing
 * variables, never a value.
 */
export const envCheck = defineValidationCheck<EnvCheckItem>({
  key: 'env',
  kind: 'env',
  item: envItem,
  name: (item) => `env:${item.service ?? 'default'}:${item.source?.type ?? 'process'}`,
  async run(item, context) {
    const source = item.source ?? { type: 'process' as const };
    const defined = await readDefinedVariables(source, context);
    const missing = item.required.filter((name) => !defined.has(name));
    // Vercel hides encrypted values (undefined here); only known-empty values count as empty.
    const empty = item.required.filter((name) => defined.has(name) && defined.get(name) === '');
    const where = describeEnvSource(source);
    if (missing.length === 0 && empty.length === 0) {
      const count = item.required.length;
      return { passed: true, message: `${count} required variable${count === 1 ? '' : 's'} set in ${where}` };
    }
    const problems = [];
    if (missing.length > 0) problems.push(`missing: ${missing.join(', ')}`);
    if (empty.length > 0) problems.push(`empty: ${empty.join(', ')}`);
    return { passed: false, message: `${problems.join('; ')} (in ${where})` };
  },
});
