/** Keeps the last `limit` bytes of a process's output, and the last line written to stderr. */
export class OutputTail {
  private chunks: Buffer[] = [];
  private size = 0;
  private stderrTail = '';
  private truncated = false;

  constructor(private readonly limit = 64 * 1024) {}

  write(chunk: Buffer, stream: 'stdout' | 'stderr'): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.limit && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
      this.truncated = true;
    }
    if (this.size > this.limit) {
      const only = this.chunks[0]!;
      this.chunks[0] = only.subarray(only.length - this.limit);
      this.size = this.limit;
      this.truncated = true;
    }
    if (stream === 'stderr') this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-4096);
  }

  /** The kept output as text; starts with a marker when older output was dropped. */
  text(): string {
    const body = Buffer.concat(this.chunks).toString('utf8');
    return this.truncated ? `[earlier output dropped]\n${body.replace(/^[^\n]*\n/, '')}` : body;
  }

  /** The last non-blank line written to stderr, at most 300 characters. */
  lastStderrLine(): string | undefined {
    const line = this.stderrTail
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter(Boolean)
      .pop();
    return line && line.length > 300 ? `${line.slice(0, 297)}...` : line;
  }
}
