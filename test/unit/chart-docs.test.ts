import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { CHART } from '../helpers/helm.js';

/**
 * Every chart value is commented in values.yaml, covered by values.schema.json
 * and documented in README.md, and the README documents nothing that is gone.
 */

// biome-ignore lint/suspicious/noExplicitAny: JSON Schema and values are walked loosely
type Any = any;

const valuesText = readFileSync(join(CHART, 'values.yaml'), 'utf8');
const values = parse(valuesText) as Any;
const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as Any;
const readme = readFileSync(join(CHART, 'README.md'), 'utf8');

function resolve(node: Any): Any {
  let n = node;
  while (n?.$ref) n = schema.definitions[String(n.$ref).split('/').pop()!];
  return n ?? {};
}

/** Leaf value paths: objects the schema declares property by property are walked, anything else is a leaf. */
function leaves(v: Any, s: Any, path: string[], out: string[]): string[] {
  const node = resolve(s);
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && node.properties && Object.keys(v).length) {
    for (const [k, x] of Object.entries(v)) {
      assert.ok(node.properties[k], `values.schema.json declares ${[...path, k].join('.')}`);
      leaves(x, node.properties[k], [...path, k], out);
    }
  } else out.push(path.join('.'));
  return out;
}

const paths = leaves(values, schema, [], []);

describe('chart docs', () => {
  it('the schema is strict: objects refuse unknown keys', () => {
    const walk = (n: Any, at: string) => {
      const node = resolve(n);
      if (node.properties) {
        assert.equal(node.additionalProperties, false, `${at || '(root)'}: additionalProperties false`);
        for (const [k, x] of Object.entries(node.properties)) walk(x, at ? `${at}.${k}` : k);
      }
    };
    walk(schema, '');
    assert.ok(paths.length > 90, `${paths.length} values`);
  });

  it('README.md documents every value with its default', () => {
    for (const p of paths) assert.match(readme, new RegExp(`^\\| \`${p.replace(/\./g, '\\.')}\` \\| .+ \\| .+ \\|$`, 'm'), p);
    const documented = [...readme.matchAll(/^\| `([A-Za-z][\w.]*)` \| /gm)].map((m) => m[1]!);
    for (const d of documented.filter((d) =>
      /^(nameOverride|fullnameOverride|clusterDomain|commonLabels|image|imagePullSecrets|tls|agent|collector|networkPolicy|serviceMonitor)\b/.test(
        d,
      ),
    )) {
      assert.ok(paths.includes(d), `README documents ${d}, which is not a value`);
    }
  });

  it('values.yaml comments every key (list items are examples, documented by their list)', () => {
    const lines = valuesText.split('\n');
    let itemIndent = -1;
    lines.forEach((line, i) => {
      if (line.trim() === '' || line.trim().startsWith('#')) return;
      const indent = line.length - line.trimStart().length;
      const dash = /^(\s*)- /.exec(line);
      if (dash) {
        itemIndent = dash[1]!.length;
        return;
      }
      if (itemIndent >= 0 && indent > itemIndent) return;
      itemIndent = -1;
      if (!/^\s*[A-Za-z][\w./-]*:/.test(line)) return;
      const prev = lines
        .slice(0, i)
        .reverse()
        .find((l) => l.trim() !== '');
      assert.ok(prev?.trim().startsWith('#') || line.includes(' # '), `values.yaml line ${i + 1} has no comment: ${line.trim()}`);
    });
  });
});
