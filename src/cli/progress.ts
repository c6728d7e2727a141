import type { DeploymentView } from '../orchestrator/index.js';

const EXIT_CODES: Record<string, number> = { SUCCESS: 0, FAILURE: 1, ROLLED_BACK: 3, CANCELLED: 4 };

/** `materi deploy` exit codes: 0 success, 1 failed, 2 bad input, 3 rolled back, 4 cancelled. */
export function exitCodeFor(status: string): number {
  return EXIT_CODES[status] ?? 1;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Turns successive views of a deployment into progress lines: each published event and each gate
 * verdict once, in order. On a terminal, a spinner line shows what the deployment waits on.
 */
export class ProgressPrinter {
  private printedEvents = 0;
  private readonly printedGates = new Set<string>();
  private spinner = 0;
  private transient = false;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly json: boolean,
  ) {}

  update(view: DeploymentView): void {
    // Published events and gate verdicts, interleaved by time, each printed once.
    const items: { at: number; print: () => void }[] = [];
    view.state.events.slice(this.printedEvents).forEach((event) => {
      items.push({
        at: Date.parse(event.time),
        print: () => {
          if (this.json) this.out.write(`${JSON.stringify({ deployment_id: view.id, ...event })}\n`);
          else {
            const line = this.describe(view, event.type, event.data as Record<string, unknown>);
            if (line) this.line(line);
          }
        },
      });
    });
    this.printedEvents = view.state.events.length;
    if (!this.json) {
      for (const [gate, state] of Object.entries(view.state.gates)) {
        if (!state?.completedAt || this.printedGates.has(gate)) continue;
        this.printedGates.add(gate);
        const ok = !/FAILED|UNHEALTHY|ERRORED|TIMED_OUT|ROLLBACK/.test(state.verdict ?? '');
        items.push({
          at: state.completedAt,
          print: () =>
            this.line(
              `${ok ? '✓' : '✗'} ${gate} ${state.verdict?.replace(':ROLLBACK', '')} (${seconds(state.completedAt! - state.requestedAt)})${state.message && !ok ? `: ${state.message}` : ''}`,
            ),
        });
      }
    }
    for (const item of items.sort((a, b) => a.at - b.at)) item.print();
    if (
      !this.json &&
      this.out.isTTY &&
      view.blockedOn &&
      !['SUCCESS', 'FAILURE', 'ROLLED_BACK', 'CANCELLED'].includes(view.status)
    ) {
      const frames = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏';
      const waited = Math.round((Date.now() - Date.parse(view.blockedOn.since)) / 1000);
      this.out.write(
        `\r\x1b[K${frames[this.spinner++ % frames.length]} blocked on: ${view.blockedOn.group}, ${waited} s`,
      );
      this.transient = true;
    }
  }

  private line(text: string): void {
    if (this.transient) this.out.write('\r\x1b[K');
    this.transient = false;
    this.out.write(`${text}\n`);
  }

  private describe(view: DeploymentView, type: string, data: Record<string, unknown>): string | undefined {
    if (type === 'deployment:started')
      return `▶ deploying ${view.project} ${view.version} to ${view.environment} (${view.id})`;
    if (type === 'validation:started') return '… validation gate (printery-validator)';
    if (type === 'dependency:check:started') return '… dependency gate (printery-dependency-checker)';
    if (type === 'health:check:started') return '… health gate (printery-health-monitor)';
    const stage = /^deployment:stage:(.+):(started|completed)$/.exec(type);
    if (stage?.[2] === 'started') return `… stage ${stage[1]} (${data.provider ?? ''})`;
    if (stage?.[2] === 'completed') {
      const ok = data.status === 'DEPLOYMENT_STATUS_SUCCESS';
      return `${ok ? '✓' : '✗'} stage ${stage[1]} (${seconds(Number(data.durationMs ?? 0))})${ok ? '' : `: ${data.errorMessage ?? ''}`}`;
    }
    if (type === 'deployment:failed') return `✗ failed: ${data.reason}`;
    if (type === 'rollback:initiated') {
      return `↺ rolling back ${(data.stagesToRollback as string[] | undefined)?.join(', ')} to ${data.previousVersion || '(no previous version)'}`;
    }
    if (type === 'rollback:completed') {
      return data.status === 'DEPLOYMENT_STATUS_SUCCESS'
        ? `✓ rolled back to ${data.restoredVersion}`
        : `✗ rollback failed: ${data.errorMessage}`;
    }
    if (type === 'deployment:completed') {
      const status = String(data.status ?? '').replace('DEPLOYMENT_STATUS_', '');
      return `${status === 'SUCCESS' ? '✔' : '■'} ${status} in ${seconds(Number(data.totalDurationMs ?? 0))}`;
    }
    return undefined;
  }
}
