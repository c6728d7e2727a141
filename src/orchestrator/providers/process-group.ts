import { readdirSync, readFileSync } from 'node:fs';

/**
 * Process groups. Providers start commands detached, as leaders of their own process group, so
 * that stopping one stops everything it started (a shell's children and their children) with a
 * single signal to the group.
 *
 * @module
 */

const POLL_MS = 25;

/** Process groups led by commands that are still running (see {@link trackGroup}). */
const inFlight = new Set<number>();

/**
 * Remembers a process group while the command leading it runs, so that a process which must exit
 * at once (a second Ctrl-C) can still kill what it started ({@link killGroupsInFlight}) instead of
 * leaving it orphaned. Returns the function that forgets the group.
 */
export function trackGroup(pgid: number): () => void {
  inFlight.add(pgid);
  return () => {
    inFlight.delete(pgid);
  };
}

/**
 * SIGKILLs every process group of a command still running in this process, synchronously (safe
 * right before `process.exit`); returns the groups it signalled.
 */
export function killGroupsInFlight(): number[] {
  const killed: number[] = [];
  for (const pgid of inFlight) {
    try {
      signalGroup(pgid, 'SIGKILL');
      killed.push(pgid);
    } catch {
      // EPERM: not ours any more; nothing else to try on the way out.
    }
  }
  return killed;
}

/** The fields of /proc/<pid>/stat after the command name (field 3 onwards), or undefined. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Whether a process exists and has not exited (a zombie waiting to be reaped counts as exited). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const state = statFields(pid)?.[0];
  return state !== 'Z' && state !== 'X';
}

/** Start time of a process (clock ticks since boot, Linux), to tell it from a later one with its pid. */
export function processStartTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/** Whether any process of a group is running (zombies excluded). */
export function groupRunning(pgid: number): boolean {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (fields && Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
  }
  return false;
}

/** Sends a signal to every process of a group; a group that is already gone is not an error. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/**
 * Stops a process group: SIGTERM, then SIGKILL to whatever is left after `gracePeriodMs`.
 * Resolves once no process of the group runs (or two seconds after SIGKILL, which cannot be
 * ignored, so only an unkillable process in uninterruptible sleep remains).
 */
export async function stopGroup(
  pgid: number,
  gracePeriodMs: number,
): Promise<'gone' | 'terminated' | 'killed'> {
  if (!groupRunning(pgid)) return 'gone';
  signalGroup(pgid, 'SIGTERM');
  if (await waitUntil(() => !groupRunning(pgid), gracePeriodMs)) return 'terminated';
  signalGroup(pgid, 'SIGKILL');
  await waitUntil(() => !groupRunning(pgid), 2000);
  return 'killed';
}

/** Polls `done` until it holds or `ms` pass; resolves whether it held. */
export async function waitUntil(done: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (done()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(POLL_MS, Math.max(1, deadline - Date.now()))),
    );
  }
}
