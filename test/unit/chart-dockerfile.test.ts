import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers/helm.js';

/**
 * No Docker engine runs here, so the Dockerfile is checked by reading it: it
 * must stay a thin wrapper over scripts/build.sh (what the tests build), on the
 * pinned base, with a non-root default user, and every file it copies must
 * exist (sources in the repository, outputs after `npm run build`) and not be
 * excluded by .dockerignore.
 */

interface Instruction {
  op: string;
  args: string;
  line: number;
}

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!buf && (line === '' || line.startsWith('#'))) return;
    if (buf && line.startsWith('#')) return;
    if (!buf) start = i + 1;
    buf += `${line.replace(/\\$/, '').trim()} `;
    if (!line.endsWith('\\')) {
      const m = /^(\S+)\s+([\s\S]*)$/.exec(buf.trim())!;
      out.push({ op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
      buf = '';
    }
  });
  return out;
}

interface Stage {
  from: string;
  name?: string;
  steps: Instruction[];
}

function stages(ins: Instruction[]): { args: Map<string, string>; stages: Stage[] } {
  const args = new Map<string, string>();
  const out: Stage[] = [];
  for (const i of ins) {
    if (i.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(i.args)!;
      out.push({ from: m[1]!, ...(m[2] ? { name: m[2] } : {}), steps: [] });
    } else if (out.length === 0 && i.op === 'ARG') {
      const [k, v] = i.args.split('=');
      args.set(k!, v ?? '');
    } else out.at(-1)?.steps.push(i);
  }
  return { args, stages: out };
}

/** COPY sources, without flags; `--from` ones are reported separately. */
function copies(stage: Stage): { from?: string; sources: string[]; dest: string }[] {
  return stage.steps
    .filter((s) => s.op === 'COPY')
    .map((s) => {
      const words = s.args.split(/\s+/);
      const flags = words.filter((w) => w.startsWith('--'));
      const rest = words.filter((w) => !w.startsWith('--'));
      const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
      return { ...(from ? { from } : {}), sources: rest.slice(0, -1), dest: rest.at(-1)! };
    });
}

function dockerignored(path: string, patterns: string[]): boolean {
  let ignored = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const p = negate ? raw.slice(1) : raw;
    const re = new RegExp(
      `^${p
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*/g, '§§')
        .replace(/\*/g, '[^/]*')
        .replace(/§§/g, '.*')}(/.*)?$`,
    );
    if (re.test(path)) ignored = !negate;
  }
  return ignored;
}

const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const ins = instructions(text);
const { args, stages: all } = stages(ins);
const build = all.find((s) => s.name === 'build')!;
const runtime = all.at(-1)!;
const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));

describe('Dockerfile', () => {
  it('builds and runs on one pinned Node 20 bookworm-slim base', () => {
    const base = args.get('NODE_IMAGE');
    assert.match(
      base ?? '',
      /^node:20\.\d+\.\d+-bookworm-slim(@sha256:[0-9a-f]{64})?$/,
      'an exact Node release, not a moving tag',
    );
    assert.equal(all.length, 2, 'a build stage and a runtime stage');
    assert.ok(build, 'a stage named build');
    for (const s of all) assert.equal(s.from, '$' + '{NODE_IMAGE}', 'both stages on the pinned base');
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
    assert.match(pkg.engines.node, />=20/, 'the image runs the Node major the project targets');
  });

  it('the build stage installs the BPF toolchain and runs the same scripts/build.sh as the tests, then prunes dev dependencies', () => {
    const runs = build.steps.filter((s) => s.op === 'RUN').map((s) => s.args);
    const all = runs.join('\n');
    assert.match(all, /apt-get install -y --no-install-recommends clang libbpf-dev/);
    assert.match(all, /npm ci\b/);
    assert.match(all, /bash scripts\/build\.sh/);
    assert.match(all, /npm prune --omit=dev/);
    assert.ok(
      all.indexOf('npm ci') < all.indexOf('scripts/build.sh') && all.indexOf('scripts/build.sh') < all.indexOf('npm prune'),
      'npm ci, then build, then prune',
    );
    // What build.sh reads is in the build context.
    const buildSh = readFileSync(join(ROOT, 'scripts/build.sh'), 'utf8');
    const copied = copies(build).flatMap((c) => c.sources);
    for (const need of ['bpf', 'proto', 'buf.gen.yaml', 'tsconfig.json']) {
      assert.ok(buildSh.includes(need), `build.sh uses ${need}`);
      assert.ok(copied.includes(need), `${need} is copied into the build stage`);
    }
    for (const need of ['src', 'buf.yaml', 'package.json', 'package-lock.json', 'scripts/build.sh']) {
      assert.ok(copied.includes(need), `${need} is copied into the build stage`);
    }
  });

  it('the runtime stage adds only libbpf1, copies the built artefacts, runs as non-root, enters at bin/doorwatch.js', () => {
    const runs = runtime.steps.filter((s) => s.op === 'RUN').map((s) => s.args);
    assert.equal(runs.length, 1);
    assert.match(runs[0]!, /apt-get install -y --no-install-recommends libbpf1 &&/);
    const fromBuild = copies(runtime)
      .filter((c) => c.from === 'build')
      .flatMap((c) => c.sources);
    assert.deepEqual(fromBuild.sort(), ['/src/build/accept.bpf.o', '/src/dist', '/src/node_modules', '/src/package.json']);
    assert.deepEqual(
      copies(runtime)
        .filter((c) => !c.from)
        .flatMap((c) => c.sources),
      ['bin'],
    );
    const user = runtime.steps.filter((s) => s.op === 'USER').at(-1);
    assert.ok(user, 'a USER');
    const [uid] = user.args.split(':');
    assert.ok(uid !== 'root' && uid !== '0' && /^\d+$/.test(uid!), `non-root numeric user, not ${user.args}`);
    const values = readFileSync(join(ROOT, 'helm/doorwatch/templates/collector-deployment.yaml'), 'utf8');
    assert.ok(values.includes(`runAsUser: ${uid}`), "the collector's Deployment runs as the image's user");
    const entry = runtime.steps.find((s) => s.op === 'ENTRYPOINT');
    assert.deepEqual(JSON.parse(entry!.args), ['/app/bin/doorwatch.js']);
    assert.ok(statSync(join(ROOT, 'bin/doorwatch.js')).mode & 0o111, 'bin/doorwatch.js is executable');
    const labels = runtime.steps
      .filter((s) => s.op === 'LABEL')
      .map((s) => s.args)
      .join(' ');
    for (const l of ['title', 'description', 'licenses', 'version', 'revision']) {
      assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${l}=`));
    }
  });

  it('every COPY source exists (outputs after `npm run build`) and is not excluded by .dockerignore', () => {
    for (const stage of all) {
      for (const c of copies(stage)) {
        for (const src of c.sources) {
          if (c.from === 'build') {
            const local = src.replace(/^\/src\//, '');
            assert.ok(existsSync(join(ROOT, local)), `${local} (made by the build stage) exists after npm run build`);
          } else {
            assert.ok(existsSync(join(ROOT, src)), `${src} exists in the repository`);
            assert.ok(!dockerignored(src, ignore), `${src} is not excluded by .dockerignore`);
          }
        }
      }
    }
    for (const out of ['node_modules', 'dist', 'build', 'src/gen', '.git']) {
      assert.ok(dockerignored(out, ignore), `${out} stays out of the build context`);
    }
  });
});
