#!/usr/bin/env node
// Runs the compiled CLI (dist/, made by `npm run build`). V8 settings are not
// in the shebang but set by main() itself (src/cli/v8-heap.ts), so
// `./bin/doorwatch.js` and `node bin/doorwatch.js` behave the same. The
// shebang used to raise the young generation
// (--max-semi-space-size=64): a storm then allocated ~15 short-lived objects
// per event and `trace` built one string per 8192-event batch, and with the
// default heap they were promoted and major GCs overflowed the ring. `trace`
// now writes its lines from one reused Buffer in 64 KiB pieces and the
// capture path allocates little; measured side by side, the flag no longer
// changes CPU per event or losses, and costs ~15-30 MiB of RSS
// (docs/benchmarks.md, "trace CLI (issue 10)").
import { main } from '../dist/bundle/main.js';

const code = await main(process.argv.slice(2));
// Let stdout drain (a pipe may still hold JSON lines) before exiting.
process.stdout.write('', () => process.exit(code));
