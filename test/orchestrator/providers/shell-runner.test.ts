import { describe, expect, it } from 'vitest';
import { groupRunning, isRunning } from '../../../src/orchestrator/providers/process-group.js';
import { type ShellEnd, shellRunner } from '../../../src/orchestrator/providers/shell-runner.js';
import { eventually } from '../../support/redis.js';

function run(command: string) {
  let pid: number | undefined;
  let output = '';
  const ended = new Promise<ShellEnd>((resolve) =>
    shellRunner.run(
      command,
      { cwd: process.cwd(), env: { PATH: process.env.PATH } },
      {
        started: (started) => {
          pid = started;
        },
        output: (chunk) => {
          output += chunk.toString();
        },
        ended: resolve,
      },
    ),
  );
  return { ended, pid: () => pid, output: () => output };
}

describe('shell runner: stage commands start outside the orchestrator process', () => {
  it('runs the command as a group leader whose parent is the runner, not this process', async () => {
    const command = run('echo "ppid=$PPID pgid=$(ps -o pgid= $$ | tr -d " ") pid=$$"; echo oops >&2; exit 3');
    const end = await command.ended;
    expect(end).toEqual({ code: 3, signal: null, error: undefined });
    const [, ppid, pgid, pid] = /ppid=(\d+) pgid=(\d+) pid=(\d+)/.exec(command.output())!.map(Number);
    expect(ppid).not.toBe(process.pid);
    expect(ppid).toBe(shellRunner.pid);
    expect(pgid).toBe(pid);
    expect(command.pid()).toBe(pid);
    expect(command.output()).toContain('oops');
  });

  it('reports a command that cannot start, with the reason', async () => {
    let ended: ShellEnd | undefined;
    await new Promise<void>((resolve) =>
      shellRunner.run(
        'true',
        { cwd: '/nonexistent/materi-dir', env: {} },
        {
          started: () => {},
          output: () => {},
          ended: (end) => {
            ended = end;
            resolve();
          },
        },
      ),
    );
    expect(ended?.error?.message).toMatch(/ENOENT/);
    expect(ended?.code).toBeNull();
  });

  it('when the runner dies, ends the commands in flight with an error and kills their groups; the next command starts a new runner', async () => {
    const command = run('sleep 30 & echo started; wait');
    await eventually(() => command.output().includes('started'));
    const runner = shellRunner.pid!;
    const group = command.pid()!;
    process.kill(runner, 'SIGKILL');
    const end = await command.ended;
    expect(end.error?.message).toMatch(/the command runner stopped \(SIGKILL\)/);
    await eventually(() => !groupRunning(group));
    expect(isRunning(runner)).toBe(false);
    const next = run('echo again');
    expect(await next.ended).toEqual({ code: 0, signal: null, error: undefined });
    expect(next.output()).toBe('again\n');
    expect(shellRunner.pid).not.toBe(runner);
  });
});
