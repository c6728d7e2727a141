import { MateriError } from '../../errors/index.js';

/** One problem found in a plan. */
export interface PlanIssue {
  /** Where in the plan, e.g. `stages[1].provider.type`; empty for the whole document. */
  path: string;
  /** What is wrong, in one line; never contains secret values. */
  message: string;
  /** Line in the plan file (1-based), when known. */
  line?: number;
}

/**
 * A plan file cannot be used: YAML syntax, a value that does not match the schema, or a semantic
 * problem (unknown stage in `dependsOn`, a cycle, a service no stage deploys). The message names the
 * file, the path and the first problem; {@link PlanInvalidError.issues} has them all.
 */
export class PlanInvalidError extends MateriError {
  /** The plan file (or the label given to `parsePlan`). */
  readonly source: string;
  /** Every problem found, in file order. */
  readonly issues: PlanIssue[];

  constructor(source: string, issues: PlanIssue[]) {
    const [first] = issues;
    const more =
      issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
    const where = first?.path ? `${first.path}: ` : '';
    super('MATERI_ERR_PLAN_INVALID', `${source}: ${where}${first?.message ?? 'invalid plan'}${more}`);
    this.source = source;
    this.issues = issues;
  }
}
