#!/usr/bin/env node
// Every test that started has a verdict: a TAP stream where a "# Subtest: X" never gets its "ok/not ok N - X"
// lost a result on the way (nodejs/node#64833: --test-force-exit can drop a file's last test events, and the
// runner then reports fewer tests with fail 0). Such a run fails here, loudly, instead of passing.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node scripts/check-tap.mjs <results.tap>');
  process.exit(2);
}
const open = [];
let verdicts = 0;
for (const line of readFileSync(file, 'utf8').split('\n')) {
  let m = /^(\s*)# Subtest: (.*)$/.exec(line);
  if (m) {
    open.push({ indent: m[1].length, name: m[2] });
    continue;
  }
  m = /^(\s*)(?:not )?ok \d+ - (.*?)(?: # (?:SKIP|TODO)\b.*)?$/.exec(line);
  if (!m) continue;
  const i = open.findLastIndex((o) => o.indent === m[1].length && o.name === m[2]);
  if (i >= 0) {
    open.splice(i, 1);
    verdicts++;
  }
}
if (verdicts === 0) {
  console.error(`check-tap: no test verdict in ${file}`);
  process.exit(1);
}
if (open.length) {
  console.error(
    `check-tap: ${open.length} test(s) started without a verdict, so their results were lost (the runner may still have said "fail 0"):`,
  );
  for (const o of open.slice(0, 20)) console.error(`  - ${o.name}`);
  process.exit(1);
}
console.log(`check-tap: ${verdicts} verdicts, every test that started has one`);
