/**
 * The parts a Materi process can run. `materi up` runs them all; `materi worker <name>` one.
 * Apart from the stack so the CLI can name them in its help without loading what runs them.
 */
export const COMPONENTS = [
  'orchestrator',
  'validator',
  'dependency-checker',
  'health-monitor',
  'notifier',
  'shield',
] as const;
export type ComponentName = (typeof COMPONENTS)[number];
