/**
 * Ctrl-C for commands that must clean up before they exit. While installed, the first SIGINT or
 * SIGTERM aborts {@link InterruptTrap.signal} (the command stops what it runs, in order); a second
 * one calls `force`, which must exit the process. {@link InterruptTrap.dispose} gives the signals
 * back to Node's default (exit at once).
 */
export class InterruptTrap {
  private readonly controller = new AbortController();
  private first: NodeJS.Signals | undefined;

  constructor(private readonly force: (signal: NodeJS.Signals) => void) {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  /** Aborted by the first signal. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The first signal received, if any. */
  get received(): NodeJS.Signals | undefined {
    return this.first;
  }

  /** The exit code of a process ended by the first signal: 128 + its number (130 for SIGINT). */
  get exitCode(): number {
    return this.first === 'SIGTERM' ? 143 : 130;
  }

  /** Resolves after `ms`, or as soon as the first signal arrives (after it: after `ms`). */
  sleep(ms: number): Promise<void> {
    if (this.signal.aborted) return new Promise((resolve) => setTimeout(resolve, ms));
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.signal.addEventListener('abort', done, { once: true });
    });
  }

  dispose(): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    if (this.first) {
      this.force(signal);
      return;
    }
    this.first = signal;
    this.controller.abort();
  };
}
