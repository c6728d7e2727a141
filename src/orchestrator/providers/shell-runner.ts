import { type ChildProcess, spawn } from 'node:child_process';
import { signalGroup } from './process-group.js';

/**
 * Starts stage commands from a small helper process instead of the orchestrator's own.
 *
 * Node's `spawn` forks the calling process and waits until the child has exec'd; in a process
 * holding hundreds of deployments that blocks the event loop 5–15 ms per command (issue 17), and
 * every stage runs one. The runner is a bare `node` process with a small heap: the fork costs it
 * little, and whatever it costs is spent outside the orchestrator's event loop. Commands are still
 * `/bin/sh -c`, leaders of their own process group, so the orchestrator stops them with a signal
 * to the group (see process-group.ts) exactly as before.
 *
 * The runner is started on first use and does not keep the orchestrator alive when idle. It exits
 * when the orchestrator goes away (its IPC channel closes); the commands it started are process
 * groups of their own and run on, as they did when the orchestrator was their parent. Should the
 * runner die, every command in flight ends with an error and its group is killed, so that no stage
 * runs on unseen; the next command starts a new runner.
 *
 * @module
 */

/** The runner, plain CommonJS for `node -e`: no build step, no loader. */
const RUNNER_SOURCE = `
const { spawn } = require('node:child_process');
process.on('disconnect', () => process.exit(0));
const closed = (s) => (s.closed ? Promise.resolve() : new Promise((r) => s.once('close', r)));
process.on('message', (m) => {
  if (!m || m.t !== 'spawn') return;
  let child;
  try {
    child = spawn('/bin/sh', ['-c', m.command], {
      cwd: m.cwd, env: m.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    process.send({ t: 'end', id: m.id, code: null, signal: null, error: String((e && e.message) || e), errorCode: e && e.code });
    return;
  }
  if (child.pid !== undefined) process.send({ t: 'pid', id: m.id, pid: child.pid });
  const forward = (stream) => (chunk) => process.send({ t: 'out', id: m.id, stream, data: chunk.toString('base64') });
  child.stdout.on('data', forward('stdout'));
  child.stderr.on('data', forward('stderr'));
  let ended = false;
  const end = async (result) => {
    if (ended) return;
    ended = true;
    // Processes left in the background may hold the pipes open: take what has arrived, briefly.
    await Promise.race([Promise.all([closed(child.stdout), closed(child.stderr)]), new Promise((r) => setTimeout(r, 200))]);
    child.stdout.destroy();
    child.stderr.destroy();
    process.send({ t: 'end', id: m.id, ...result });
  };
  child.once('error', (e) => end({ code: null, signal: null, error: e.message, errorCode: e.code }));
  child.once('exit', (code, signal) => end({ code, signal }));
});
`;

/** How a command ended. */
export interface ShellEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** What the caller hears of one command. */
export interface ShellHandlers {
  /** The shell started: its pid, which is also its process group id. */
  started(pid: number): void;
  output(chunk: Buffer, stream: 'stdout' | 'stderr'): void;
  /** Last call; after it nothing more comes for this command. */
  ended(end: ShellEnd): void;
}

type RunnerMessage =
  | { t: 'pid'; id: number; pid: number }
  | { t: 'out'; id: number; stream: 'stdout' | 'stderr'; data: string }
  | {
      t: 'end';
      id: number;
      code: number | null;
      signal: NodeJS.Signals | null;
      error?: string;
      errorCode?: string;
    };

interface InFlight {
  handlers: ShellHandlers;
  pid?: number;
}

class ShellRunner {
  private process: ChildProcess | undefined;
  private readonly inFlight = new Map<number, InFlight>();
  private nextId = 1;

  /** The runner's pid while it runs. */
  get pid(): number | undefined {
    return this.process?.pid;
  }

  /** Runs `/bin/sh -c command` in its own process group. */
  run(command: string, options: { cwd: string; env: NodeJS.ProcessEnv }, handlers: ShellHandlers): void {
    const id = this.nextId++;
    let runner: ChildProcess;
    try {
      runner = this.runner();
    } catch (error) {
      handlers.ended({ code: null, signal: null, error: error as Error });
      return;
    }
    this.inFlight.set(id, { handlers });
    if (this.inFlight.size === 1) {
      runner.ref();
      runner.channel?.ref();
    }
    runner.send({ t: 'spawn', id, command, cwd: options.cwd, env: options.env });
  }

  private runner(): ChildProcess {
    if (this.process) return this.process;
    const runner = spawn(process.execPath, ['-e', RUNNER_SOURCE], {
      // Its own environment does not matter (each command gets one); no NODE_OPTIONS loaders.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'json',
    });
    runner.on('message', (message: RunnerMessage) => this.receive(message));
    const stopped = (why: string) => {
      if (this.process !== runner) return;
      this.process = undefined;
      for (const [id, command] of this.inFlight) {
        this.inFlight.delete(id);
        if (command.pid !== undefined) signalGroup(command.pid, 'SIGKILL');
        command.handlers.ended({ code: null, signal: null, error: new Error(`the command runner ${why}`) });
      }
    };
    runner.once('exit', (code, signal) => stopped(`stopped (${signal ?? `exit code ${code}`})`));
    runner.once('error', (error) => stopped(`failed: ${error.message}`));
    this.process = runner;
    return runner;
  }

  private receive(message: RunnerMessage): void {
    const command = this.inFlight.get(message.id);
    if (!command) return;
    if (message.t === 'pid') {
      command.pid = message.pid;
      command.handlers.started(message.pid);
    } else if (message.t === 'out') {
      command.handlers.output(Buffer.from(message.data, 'base64'), message.stream);
    } else {
      this.inFlight.delete(message.id);
      if (this.inFlight.size === 0 && this.process) {
        // Idle: the runner must not keep the orchestrator's process alive.
        this.process.unref();
        this.process.channel?.unref();
      }
      const error =
        message.error === undefined
          ? undefined
          : Object.assign(new Error(message.error), message.errorCode ? { code: message.errorCode } : {});
      command.handlers.ended({ code: message.code, signal: message.signal, error });
    }
  }
}

/** The runner of this process. */
export const shellRunner = new ShellRunner();
