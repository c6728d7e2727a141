import { Command, CommanderError } from 'commander';
import { vi } from 'vitest';
import { MateriError } from '../../src/errors/index.js';

export interface InProcessResult {
  /** The exit code src/cli/main.ts would exit with (an action's `process.exitCode` included). */
  code: number;
  stdout: string;
  /** Everything written to stderr, plus `materi: <message>` for a failure, as main.ts prints it. */
  stderr: string;
  error?: unknown;
}

/**
 * Runs `materi <args>` in this process with the given commands registered, as src/cli/main.ts
 * would: settings come from `process.env` (stub them with `vi.stubEnv`), stdout and stderr are
 * collected, and a failure becomes main.ts's one-line message and exit code.
 */
export async function runMateri(
  register: ((program: Command) => void)[],
  args: string[],
): Promise<InProcessResult> {
  let stdout = '';
  let stderr = '';
  const program = new Command('materi')
    .exitOverride()
    .enablePositionalOptions()
    .configureOutput({
      writeOut: (text) => {
        stdout += text;
      },
      writeErr: (text) => {
        stderr += text;
      },
    });
  for (const add of register) add(program);
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  process.exitCode = undefined;
  try {
    await program.parseAsync(['node', 'materi', ...args]);
    return { code: Number(process.exitCode ?? 0), stdout, stderr };
  } catch (error) {
    if (error instanceof CommanderError) return { code: error.exitCode === 0 ? 0 : 2, stdout, stderr, error };
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof MateriError)
      return { code: error.exitCode, stdout, stderr: `${stderr}materi: ${message}\n`, error };
    return { code: 1, stdout, stderr: `${stderr}materi: unexpected error: ${message}\n`, error };
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.exitCode = undefined;
  }
}
