#!/usr/bin/env node
// Runs the compiled CLI (dist/, made by `npm run build`).
import { main } from '../dist/cli/main.js';

const code = await main(process.argv.slice(2));
// Let stdout drain (a pipe may still hold JSON lines) before exiting.
process.stdout.write('', () => process.exit(code));
