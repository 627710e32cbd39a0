/**
 * The CLI from source (no `npm run build` needed), as bin/doorwatch.js runs it:
 *
 *   node --import tsx test/helpers/doorwatch-cli-source.ts agent --config agent.yaml
 */
import { main } from '../../src/cli/main.js';

const code = await main(process.argv.slice(2));
process.stdout.write('', () => process.exit(code));
