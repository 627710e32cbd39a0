// The esbuild step of scripts/build.sh (see the comment there): one ESM bundle per command, split along
// main.ts's lazy imports. A script rather than the esbuild CLI for one plugin, below.
import { build } from 'esbuild';

/*
 * client-node's generated models (~720 files under dist/gen/models/) each end in assignments to their own
 * class (`V1Pod.attributeTypeMap = [...]`), which esbuild must keep as side effects, so every model was
 * bundled — and loaded — wherever anything imported KubeConfig (its module imports the generated index).
 * Those assignments are observable only through the class itself, so a model nobody imports can go:
 * marked side-effect free here, the models stay out of every command's chunks (Doorwatch's own requests
 * never use them: src/kube/rest.ts). test/kernel/kube-lazy.test.ts checks what the agent loads.
 */
const modelsWithoutSideEffects = {
  name: 'client-node-models-without-side-effects',
  setup(b) {
    b.onResolve({ filter: /\/models\/[^/]+\.js$/ }, async (a) => {
      if (a.pluginData === 'resolving') return undefined;
      const r = await b.resolve(a.path, { kind: a.kind, importer: a.importer, resolveDir: a.resolveDir, pluginData: 'resolving' });
      if (r.errors.length > 0) return { errors: r.errors };
      return /[\\/]@kubernetes[\\/]client-node[\\/]dist[\\/]gen[\\/]models[\\/]/.test(r.path) ? { ...r, sideEffects: false } : r;
    });
  },
};

/*
 * node-fetch 2 (client-node's Watch) requires whatwg-url at load time, for `Url.URL || whatwgUrl.URL`: a
 * fallback for runtimes without url.URL, which Node has had since version 10. whatwg-url loads tr46's
 * 8 000-entry Unicode table (~1.6 MiB of heap, ~3.6 MiB of RSS) that is never read. node-fetch gets
 * Node's own URL under that name instead.
 */
const whatwgUrlIsNodes = {
  name: 'whatwg-url-is-nodes',
  setup(b) {
    b.onResolve({ filter: /^whatwg-url$/ }, (a) =>
      /[\\/]node_modules[\\/]node-fetch[\\/]/.test(a.importer) ? { path: 'whatwg-url', namespace: 'node-url' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'node-url' }, () => ({ contents: 'module.exports = { URL: globalThis.URL };', loader: 'js' }));
  },
};

await build({
  entryPoints: ['src/cli/main.ts'],
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outdir: 'dist/bundle',
  external: ['koffi'],
  minifyWhitespace: true,
  sourcemap: true,
  logLevel: 'warning',
  banner: {
    js: "import { createRequire as __doorwatchRequire } from 'node:module'; const require = __doorwatchRequire(import.meta.url);",
  },
  plugins: [modelsWithoutSideEffects, whatwgUrlIsNodes],
});
