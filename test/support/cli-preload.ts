import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Runs `src/cli/main.ts` in a child process with `preload` imported first (a module that replaces
 * commander's `parseAsync` to report on the program instead of running it) and parses the JSON it
 * prints. Rejects with `what` and stderr when the child exits non-zero.
 */
export function runCliWithPreload<T>(
  preload: string,
  what: string,
  env: Record<string, string> = {},
): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--import',
        `data:text/javascript,${encodeURIComponent(preload)}`,
        'src/cli/main.ts',
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`${what} failed (exit ${code}): ${stderr}`));
      else resolve(JSON.parse(stdout) as T);
    });
  });
}
