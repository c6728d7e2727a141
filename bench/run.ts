/**
 * Runs benchmarks: `npm run bench` runs every `bench/<name>.ts`, `npm run bench -- publish` one.
 * Each benchmark prints JSON lines `{"bench","metric","value","baseline","ratio"}`; this runner
 * passes them through and ends with a table of every comparison.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.startsWith('_'))
  .map((f) => f.replace(/\.ts$/, ''))
  .sort();
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const name of wanted) {
  if (!available.includes(name)) {
    process.stderr.write(`bench: no benchmark "${name}" (have: ${available.join(', ')})\n`);
    process.exit(2);
  }
}

interface Row {
  bench: string;
  metric: string;
  value: number;
  baseline: number;
  ratio: number;
  target?: string;
}
const rows: Row[] = [];

for (const name of wanted.length > 0 ? wanted : available) {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, `${name}.ts`)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buffer = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        process.stdout.write(`${line}\n`);
        try {
          const parsed = JSON.parse(line) as Row;
          if (parsed.bench && parsed.metric) rows.push(parsed);
        } catch {
          // Not a result line.
        }
        newline = buffer.indexOf('\n');
      }
    });
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`bench ${name} exited with ${code}`)),
    );
  });
}

if (rows.length > 0) {
  process.stdout.write('\n');
  console.table(
    rows.map((r) => ({
      bench: r.bench,
      metric: r.metric,
      value: Math.round(r.value * 100) / 100,
      baseline: Math.round(r.baseline * 100) / 100,
      ratio: Math.round(r.ratio * 1000) / 1000,
      target: r.target ?? '',
    })),
  );
}
