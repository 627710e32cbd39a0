import { readFileSync } from 'node:fs';

/**
 * The top allocators of a .heapprofile (bench/alloc-profile.ts): bytes allocated by each function itself,
 * and with everything it called, as shares of the whole.
 *
 *   npx tsx bench/alloc-summary.ts FILE [top=25]
 */

interface Node {
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  selfSize: number;
  children?: Node[];
}

const [file, top = '25'] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: npx tsx bench/alloc-summary.ts FILE.heapprofile [top]\n');
  process.exit(2);
}
const { head } = JSON.parse(readFileSync(file, 'utf8')) as { head: Node };
const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;
const add = (m: Map<string, number>, k: string, n: number) => m.set(k, (m.get(k) ?? 0) + n);
// Iterative: a deep stack would not fit in the JavaScript one.
const work: { n: Node; stack: string[] }[] = [{ n: head, stack: [] }];
for (let item = work.pop(); item; item = work.pop()) {
  const cf = item.n.callFrame;
  // The bundle is a few long lines: the column tells two functions of the same name apart.
  const name = `${cf.functionName || '(anonymous)'} ${cf.url.split('/').at(-1)}:${cf.lineNumber + 1}:${cf.columnNumber + 1}`;
  const stack = [...item.stack, name];
  total += item.n.selfSize;
  add(self, name, item.n.selfSize);
  for (const s of new Set(stack)) add(inclusive, s, item.n.selfSize);
  for (const c of item.n.children ?? []) work.push({ n: c, stack });
}
const show = (title: string, m: Map<string, number>) => {
  process.stdout.write(`${title}\n`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, Number(top)))
    process.stdout.write(`${((v * 100) / total).toFixed(1).padStart(5)} %  ${(v / 2 ** 20).toFixed(1).padStart(8)} MiB  ${k}\n`);
};
process.stdout.write(`${(total / 2 ** 20).toFixed(1)} MiB sampled\n`);
show('allocated by the function itself:', self);
show('with what it called:', inclusive);
