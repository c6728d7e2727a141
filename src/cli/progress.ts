import { type DeploymentView, FINAL_STATUSES, GATES, type SagaState } from '../orchestrator/index.js';

type GateName = keyof typeof GATES;
type PublishedRecord = SagaState['events'][number];

const EXIT_CODES: Record<string, number> = { SUCCESS: 0, FAILURE: 1, ROLLED_BACK: 3, CANCELLED: 4 };

/** `materi deploy` exit codes: 0 success, 1 failed, 2 bad input, 3 rolled back, 4 cancelled. */
export function exitCodeFor(status: string): number {
  return EXIT_CODES[status] ?? 1;
}

function seconds(ms: number): string {
  // Clamped: a clock stepping back must not make a duration negative.
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

/** One line of progress: a published event or a gate's verdict. */
interface Step {
  key: string;
  /** Keys of the steps that must be printed first. */
  after: string[];
  event?: PublishedRecord;
  gate?: GateName;
}

const STAGE_EVENT = /^deployment:stage:(.+):(started|completed)$/;

/**
 * Turns successive views of a deployment into progress lines, each once, in the deployment's own
 * order, and ends with one summary line that carries the outcome and, unless it succeeded, the
 * reason (the step lines do not repeat it). On a terminal, a spinner line shows what the
 * deployment waits on.
 *
 * The order is the saga's step sequence — the order of `state.events` — with each gate's verdict
 * right after the gate's request, not the order of timestamps: a verdict and the next step often
 * share a millisecond, and clocks step. Successive views need not agree (two saves of the saga can
 * land out of order), so steps are remembered by id, and a step whose cause has not been seen yet
 * (a stage's completion before its start, a result before its request) waits for it, until the
 * deployment ends.
 */
export class ProgressPrinter {
  private readonly printed = new Set<string>();
  private summarized = false;
  private spinner = 0;
  private transient = false;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean },
    private readonly json: boolean,
  ) {}

  update(view: DeploymentView): void {
    const ended = FINAL_STATUSES.includes(view.status);
    const steps = this.steps(view);
    // Print the earliest step whose causes are printed, again and again: printing one can release
    // a step held earlier in the list. Once the deployment has ended nothing more will come, so
    // whatever still waits for a cause is printed too.
    for (;;) {
      const next = steps.find(
        (step) => !this.printed.has(step.key) && (ended || step.after.every((key) => this.printed.has(key))),
      );
      if (!next) break;
      this.print(view, next);
    }
    if (ended) {
      this.summarize(view);
      return;
    }
    if (!this.json && this.out.isTTY && view.waitingFor) {
      const frames = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';
      const waited = Math.round((Date.now() - Date.parse(view.waitingFor.since)) / 1000);
      this.out.write(
        `\r\x1b[K${frames[this.spinner++ % frames.length]} waiting for approval of ${view.waitingFor.gate}, ${waited} s`,
      );
      this.transient = true;
    } else if (!this.json && this.out.isTTY && view.blockedOn) {
      const frames = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';
      const waited = Math.round((Date.now() - Date.parse(view.blockedOn.since)) / 1000);
      this.out.write(
        `\r\x1b[K${frames[this.spinner++ % frames.length]} blocked on: ${view.blockedOn.group}, ${waited} s`,
      );
      this.transient = true;
    }
  }

  /** The view's steps in the saga's order, each with the steps it follows from. */
  private steps(view: DeploymentView): Step[] {
    const { events, gates } = view.state;
    const started = events.find((e) => e.type === 'deployment:started');
    const first = started ? [started.id] : [];
    const gateOf = new Map<string, GateName>();
    for (const [name, gate] of Object.entries(gates)) if (gate) gateOf.set(gate.requestId, name as GateName);
    const steps: Step[] = [];
    for (const event of events) {
      const stage = STAGE_EVENT.exec(event.type);
      const after =
        event === started
          ? []
          : stage?.[2] === 'completed'
            ? [...first, `stage:${stage[1]}`]
            : event.type === 'rollback:completed'
              ? [...first, 'rollback']
              : first;
      steps.push({ key: event.id, after, event });
      const gate = gateOf.get(event.id);
      if (gate && !this.json && gates[gate]?.completedAt)
        steps.push({ key: `gate:${gate}`, after: [event.id], gate });
    }
    // A verdict whose request is not in the list (a saga resumed after a crash between publishing
    // the request and recording it) goes after the last step that happened before it.
    if (!this.json) {
      for (const [name, gate] of Object.entries(gates)) {
        if (!gate?.completedAt || events.some((e) => e.id === gate.requestId)) continue;
        const at = steps.findIndex((s) => s.event && Date.parse(s.event.time) > gate.completedAt!);
        const step: Step = { key: `gate:${name}`, after: first, gate: name as GateName };
        if (at < 0) steps.push(step);
        else steps.splice(at, 0, step);
      }
    }
    return steps;
  }

  private print(view: DeploymentView, step: Step): void {
    this.printed.add(step.key);
    const { event } = step;
    if (event) {
      const stage = STAGE_EVENT.exec(event.type);
      if (stage?.[2] === 'started') this.printed.add(`stage:${stage[1]}`);
      if (event.type === 'rollback:initiated') this.printed.add('rollback');
      if (this.json) this.out.write(`${JSON.stringify({ deployment_id: view.id, ...event })}\n`);
      else {
        const line = this.describe(view, event.type, event.data as Record<string, unknown>);
        if (line) this.line(line);
      }
      return;
    }
    const gate = view.state.gates[step.gate!]!;
    const ok = !/FAILED|UNHEALTHY|ERRORED|TIMED_OUT|ROLLBACK/.test(gate.verdict ?? '');
    // A failing verdict fails the deployment: its message is the reason, which the summary carries.
    this.line(
      `${ok ? '✓' : '✗'} ${step.gate} ${gate.verdict?.replace(':ROLLBACK', '')} (${seconds(gate.completedAt! - gate.requestedAt)})`,
    );
  }

  /** The last line: the outcome, how long it took and, unless it succeeded, why. */
  private summarize(view: DeploymentView): void {
    if (this.summarized) return;
    this.summarized = true;
    if (this.json) {
      this.out.write(`${JSON.stringify({ id: view.id, status: view.status, reason: view.reason })}\n`);
      return;
    }
    const { state } = view;
    const end = state.finishedAt ?? Date.parse(view.finishedAt ?? view.updatedAt);
    const took = end - (state.startedAt ?? Date.parse(view.createdAt));
    const ok = view.status === 'SUCCESS';
    this.line(
      `${ok ? '✔' : '■'} ${view.status} in ${seconds(took)}${!ok && view.reason ? ` — ${view.reason}` : ''}`,
    );
    // Stages that failed alongside the one the reason names would otherwise go unexplained.
    for (const [name, stage] of Object.entries(state.stages)) {
      if (!stage.error || stage.status === 'cancelled' || state.failure?.stage === name) continue;
      if (view.reason?.includes(stage.error)) continue;
      this.line(`  also failed: stage ${name}: ${stage.error}`);
    }
  }

  private line(text: string): void {
    if (this.transient) this.out.write('\r\x1b[K');
    this.transient = false;
    this.out.write(`${text}\n`);
  }

  private describe(view: DeploymentView, type: string, data: Record<string, unknown>): string | undefined {
    if (type === 'deployment:started')
      return view.kind === 'rollback'
        ? `▶ rolling ${view.environment} of ${view.project} back from ${view.previousVersion ?? '?'} to ${view.version} (${view.id}; no validation or dependency gate)`
        : `▶ deploying ${view.project} ${view.version} to ${view.environment} (${view.id})`;
    if (type === 'validation:started') return `… validation gate (${GATES.validation.group})`;
    if (type === 'dependency:check:started') return `… dependency gate (${GATES.dependency.group})`;
    if (type === 'health:check:started') return `… health gate (${GATES.health.group})`;
    const stage = STAGE_EVENT.exec(type);
    if (stage?.[2] === 'started') return `… stage ${stage[1]} (${data.provider ?? ''})`;
    if (stage?.[2] === 'completed') {
      const took = seconds(Number(data.durationMs ?? 0));
      if (data.status === 'DEPLOYMENT_STATUS_SUCCESS') return `✓ stage ${stage[1]} (${took})`;
      if (data.status === 'DEPLOYMENT_STATUS_CANCELLED') return `■ stage ${stage[1]} cancelled (${took})`;
      // Its error is in the reason the summary prints (or under "also failed").
      return `✗ stage ${stage[1]} failed (${took})`;
    }
    if (type === 'deployment:failed') {
      // Where, not why: the summary line carries the reason.
      const where = data.failedStage
        ? `stage ${data.failedStage}`
        : (GATES[data.failedGate as GateName]?.label ?? String(data.failedGate ?? ''));
      return `✗ deployment failed${where ? ` (${where})` : ''}`;
    }
    if (type === 'approval:requested') {
      const until = typeof data.deadline === 'string' ? data.deadline : 'its deadline';
      return `⏸ waiting for approval of ${data.gate} (approvers: ${data.approvers || 'any operator'}, until ${until}): materi approve ${view.id}`;
    }
    if (type === 'approval:completed') {
      const comment = data.comment ? `: ${data.comment}` : '';
      if (data.outcome === 'APPROVAL_OUTCOME_APPROVED')
        return `✓ ${data.gate} approved by ${data.by}${comment}`;
      if (data.outcome === 'APPROVAL_OUTCOME_REJECTED')
        return `✗ ${data.gate} rejected by ${data.by}${comment}`;
      return `✗ approval of ${data.gate} expired`;
    }
    if (type === 'rollback:initiated') {
      return `↺ rolling back ${(data.stagesToRollback as string[] | undefined)?.join(', ')} to ${data.previousVersion || '(no previous version)'}`;
    }
    if (type === 'rollback:completed') {
      return data.status === 'DEPLOYMENT_STATUS_SUCCESS'
        ? `✓ rolled back to ${data.restoredVersion}`
        : `✗ rollback failed: ${data.errorMessage}`;
    }
    // deployment:completed: the summary line says it.
    return undefined;
  }
}
