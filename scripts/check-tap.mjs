#!/usr/bin/env node
// Every test that started has a verdict: a TAP stream where a "# Subtest: X" never gets its "ok/not ok N - X"
// lost a result on the way (nodejs/node#64833: --test-force-exit can drop a file's last test events, and the
// runner then reports fewer tests with fail 0). Such a run fails here, loudly, instead of passing.
// It also repeats every failure, with its diagnostics, at the very end of the output: a CI log shown by its tail
// must name the test that failed, not only "fail 1". Failures alone do not fail it: the runner's exit code does.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node scripts/check-tap.mjs <results.tap>');
  process.exit(2);
}
const open = [];
const failures = [];
let verdicts = 0;
let last = null; // the last "not ok", whose YAML block (if the next line opens one) is its diagnostics
let diag = null; // that block, while it is being read
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (diag) {
    if (/^\s*\.\.\.$/.test(line)) diag = null;
    else if (diag.length < 40) diag.push(line);
    continue;
  }
  if (last && /^\s*---$/.test(line)) {
    diag = last.diag;
    last = null;
    continue;
  }
  last = null;
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
  if (line.trimStart().startsWith('not ok ')) {
    // A suite fails when a test in it fails: name the innermost failure with its enclosing suites.
    const path = [...open.filter((o) => o.indent < m[1].length).map((o) => o.name), m[2]].join(' › ');
    last = { path, diag: [] };
    failures.push(last);
  }
}
const leaves = failures.filter((f) => !failures.some((g) => g !== f && g.path.startsWith(`${f.path} › `)));
if (leaves.length) {
  console.error(`check-tap: ${leaves.length} failing test(s):`);
  for (const f of leaves.slice(0, 20)) {
    console.error(`  ✗ ${f.path}`);
    for (const d of f.diag.filter((l) => !/^\s*(duration_ms|type):/.test(l))) console.error(`    ${d.trim()}`);
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
