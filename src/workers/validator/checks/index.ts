import type { ValidationCheck } from '../check.js';
import { discoveryCheck } from './discovery.js';
import { envCheck } from './env.js';
import { imageCheck } from './image.js';
import { migrationsCheck } from './migrations.js';

export { discoveryCheck, envCheck, imageCheck, migrationsCheck };

/** The checks the validator runs by default, by spec key: images, migrations, env, discovery. */
export const DEFAULT_VALIDATION_CHECKS: readonly ValidationCheck[] = Object.freeze([
  imageCheck,
  migrationsCheck,
  envCheck,
  discoveryCheck,
]);
