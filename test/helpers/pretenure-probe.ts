/**
 * Where V8 puts a per-event object literal after a storm, printed as JSON:
 *
 *   node --allow-natives-syntax --max-semi-space-size=1 --import tsx test/helpers/pretenure-probe.ts none|tune|main
 *
 * none: V8's defaults; tune: tuneV8() first; main: the CLI's main() first (`--help`), as every command
 * starts. test/unit/v8-heap.test.ts reads the answer.
 */
const mode = process.argv[2];
if (mode === 'tune') (await import('../../src/cli/v8-heap.js')).tuneV8();
else if (mode === 'main') await (await import('../../src/cli/main.js')).main(['--help']);
else if (mode !== 'none') throw new Error(`pretenure-probe: unknown mode "${mode}" (none, tune or main)`);

// One allocation site, shaped like an event's process: what V8 decides for it, it decides for all its objects.
const make = (i: number) => ({ pid: i, tid: i + 1, ppid: 1, uid: 0, gid: 0, comm: 'nginx' });

// A storm: batches that outlive the young generation (40 000 objects, ~2.5 MiB, in a 1 MiB one), so the
// site's objects survive scavenges, as a storm's 1 024-record drains did in the agent's 2 MiB.
let drain: object[] = [];
for (let i = 0; i < 2_000_000; i++) {
  drain.push(make(i));
  if (drain.length === 40_000) drain = [];
}
drain = [];

// Then 2 000 more, each asked at once (before any collection can move it) which generation it was put in.
const young = new Function('o', 'return %InYoungGeneration(o)') as (o: object) => boolean;
let inYoung = 0;
const fresh = 2000;
for (let i = 0; i < fresh; i++) if (young(make(i))) inYoung++;
process.stdout.write(`${JSON.stringify({ young: inYoung, old: fresh - inYoung })}\n`);
