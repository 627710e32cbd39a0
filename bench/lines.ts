import type { Readable } from 'node:stream';

/** Line-at-a-time reading of a child's stream, with a deadline per line. */
export class LineReader {
  readonly #lines: string[] = [];
  readonly #what: string;
  #partial = '';
  #ended = false;
  #wake: (() => void) | undefined;
  /** Everything read so far (for error messages and after-the-fact parsing). */
  text = '';

  constructor(stream: Readable, what: string) {
    this.#what = what;
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.text += chunk;
      const parts = (this.#partial + chunk).split('\n');
      this.#partial = parts.pop() ?? '';
      this.#lines.push(...parts);
      this.#wake?.();
    });
    stream.on('end', () => {
      this.#ended = true;
      if (this.#partial) this.#lines.push(this.#partial);
      this.#partial = '';
      this.#wake?.();
    });
  }

  /** The next line matching `pred` (others are skipped). */
  async next(timeoutMs: number, pred: (line: string) => boolean = () => true): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.#lines.length) {
        const line = this.#lines.shift() as string;
        if (pred(line)) return line;
      }
      if (this.#ended) throw new Error(`${this.#what} ended before the expected line; it wrote:\n${this.text.slice(-2000)}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${this.#what}; it wrote:\n${this.text.slice(-2000)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          this.#wake = undefined;
          resolve();
        };
      });
    }
  }

  async nextJson<T>(timeoutMs: number): Promise<T> {
    return JSON.parse(await this.next(timeoutMs, (l) => l.startsWith('{'))) as T;
  }
}
