#!/usr/bin/env -S node --max-semi-space-size=64
// Runs the compiled CLI (dist/, made by `npm run build`). The V8 flag above:
// a capture storm allocates ~15 short-lived objects per event, and with the
// default young generation they are promoted and major GCs stall the ring
// drain long enough to overflow it (docs/benchmarks.md). Run as
// `node --max-semi-space-size=64 bin/doorwatch.js` when not executed directly.
import { main } from '../dist/cli/main.js';

const code = await main(process.argv.slice(2));
// Let stdout drain (a pipe may still hold JSON lines) before exiting.
process.stdout.write('', () => process.exit(code));
