/**
 * Run by test/unit/kube-lazy-load.test.ts as `node --import tsx kube-lazy-child.ts <scenario>`, with HOME
 * pointing at an empty directory. A module resolve hook, registered before anything of ours is imported,
 * refuses `@kubernetes/client-node`: if any module on the path runs into it, the import fails, naming the
 * importer. Prints one JSON line: what startKube answered, or the error.
 */
import { register } from 'node:module';

const hooks = `
export async function resolve(specifier, context, next) {
  if (specifier === '@kubernetes/client-node' || specifier.startsWith('@kubernetes/client-node/'))
    throw new Error('client-node imported by ' + context.parentURL);
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);

const scenario = process.argv[2];
const kubeconfig = process.argv[3];
// Everything `trace` and `agent` load before they start (main.ts imports them on demand), and startKube.
await import('../../src/cli/main.js');
await import('../../src/cli/trace.js');
await import('../../src/cli/agent.js');
await import('../../src/collector/collector.js');
const { startKube } = await import('../../src/cli/pipeline.js');
const { silentLogger } = await import('../../src/log/logger.js');

const kube = {
  'no-kube': { enabled: false, env: {} },
  'nothing-found': { enabled: true, env: {} },
  kubeconfig: { enabled: true, env: { KUBECONFIG: kubeconfig } },
}[scenario ?? ''];
if (!kube) throw new Error(`unknown scenario ${scenario}`);
try {
  const r = await startKube({ kube, nodeName: 'node-a' }, silentLogger);
  process.stdout.write(`${JSON.stringify({ source: r.source !== undefined, reason: r.reason, detail: r.detail })}\n`);
  await r.source?.stop();
} catch (e) {
  process.stdout.write(`${JSON.stringify({ error: (e as Error).message })}\n`);
}
