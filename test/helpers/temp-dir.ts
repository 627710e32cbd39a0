import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const tempDirs: string[] = [];

/** A fresh temp directory, removed (with what is in it) when the process exits: tests and benches leave none. */
export function tempDir(prefix = 'doorwatch-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (tempDirs.length === 0) {
    process.once('exit', () => {
      for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  tempDirs.push(dir);
  return dir;
}
