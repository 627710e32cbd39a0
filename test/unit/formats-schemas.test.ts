import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatLine, formatRecord } from '../../src/formats/format.js';
import { corpus } from '../helpers/schemas/corpus.js';
import { loadEcs, validateEcs } from '../helpers/schemas/ecs.js';
import { loadOcsf, validateOcsf } from '../helpers/schemas/ocsf.js';

const ocsf = loadOcsf();
const ecs = loadEcs();

describe('every formatted record is valid under the upstream schemas', () => {
  for (const [name, rec] of corpus()) {
    it(`OCSF ${ocsf.version}: ${name}`, () => {
      const obj = formatRecord(rec, 'ocsf');
      assert.deepEqual(validateOcsf(ocsf, obj), []);
      // The line writer (per-pod text caches) is validated too, not only the object form.
      assert.deepEqual(validateOcsf(ocsf, JSON.parse(formatLine(rec, 'ocsf'))), []);
    });
    it(`ECS ${ecs.version}: ${name}`, () => {
      assert.deepEqual(validateEcs(ecs, formatRecord(rec, 'ecs')), []);
      assert.deepEqual(validateEcs(ecs, JSON.parse(formatLine(rec, 'ecs'))), []);
    });
  }
});

// biome-ignore lint/suspicious/noExplicitAny: edits reach into arbitrary paths of a parsed record
type Doc = Record<string, any>;

/** A formatted record, changed by `edit` (a deep copy: the formatters' output is never touched). */
function edited(format: 'ocsf' | 'ecs', edit: (r: Doc) => void): Record<string, unknown> {
  const [, rec] = corpus()[0]!;
  const r = JSON.parse(formatLine(rec, format)) as Doc;
  edit(r);
  return r;
}

describe('the validators catch violations', () => {
  const ocsfCases: [string, (r: Doc) => void, RegExp][] = [
    ['an unknown attribute', (r) => (r.src_endpoint.bogus = 1), /^src_endpoint\.bogus: not an attribute/],
    ['an unknown top-level attribute', (r) => (r.pod_name = 'x'), /^pod_name: not an attribute of this class/],
    ['a wrong type', (r) => (r.actor.process.pid = '812'), /^actor\.process\.pid: expected integer_t/],
    [
      'an overflowing integer_t',
      (r) => (r.metadata.sequence = 2 ** 31),
      /^metadata\.sequence: expected integer_t \(32-bit signed\), got 2147483648/,
    ],
    ['a port out of range', (r) => (r.dst_endpoint.port = 70000), /^dst_endpoint\.port: 70000 outside port_t's range/],
    ['a bad IP', (r) => (r.src_endpoint.ip = '10.0.0.300'), /^src_endpoint\.ip: "10\.0\.0\.300" does not match ip_t/],
    [
      'an undeclared profile attribute',
      (r) => (r.metadata.profiles = r.metadata.profiles.filter((p: string) => p !== 'linux/linux_users')),
      /^actor\.process\.group: defined by profile linux\/linux_users/,
    ],
    [
      'a _dt sibling without the datetime profile',
      (r) => (r.metadata.profiles = ['host', 'container', 'linux/linux_users']),
      /^time_dt: defined by profile datetime/,
    ],
    ['an unknown profile', (r) => r.metadata.profiles.push('kubernetes'), /^metadata\.profiles: unknown profile "kubernetes"/],
    ['an id outside the enum', (r) => (r.activity_id = 42), /^activity_id: 42 is not one of the enum's ids/],
    ['a caption that disagrees', (r) => (r.status = 'Failure'), /^status: "Failure" disagrees with status_id 1 \(Success\)/],
    ['a missing required attribute', (r) => delete r.metadata.product, /^metadata\.product: required, missing/],
    ['a scalar where an array is expected', (r) => (r.actor.process.container.labels = 'a=b'), /labels: expected an array/],
    ['a wrong type_uid', (r) => (r.type_uid = 400102), /^type_uid: 400102, expected class_uid \* 100 \+ activity_id/],
    ['an unknown class', (r) => (r.class_uid = 9999), /^class_uid: 9999 is not a class/],
    ['a deprecated attribute', (r) => (r.actor.process.tid = 813), /^actor\.process\.tid: deprecated since 1\.6\.0/],
  ];
  for (const [what, edit, expected] of ocsfCases) {
    it(`OCSF: ${what}`, () => {
      const problems = validateOcsf(ocsf, edited('ocsf', edit));
      assert.ok(
        problems.some((p) => expected.test(p)),
        `expected a problem matching ${expected}, got ${JSON.stringify(problems)}`,
      );
    });
  }

  const ecsCases: [string, (r: Doc) => void, RegExp][] = [
    [
      'a field ECS 8.11 does not have',
      (r) => (r.process.group = { id: '102' }),
      /^process\.group\.id: not a field of ECS 8\.11\.0/,
    ],
    ['a custom field inside an ECS field set', (r) => (r.event.doorwatch_kind = 'accept'), /^event\.doorwatch_kind: not a field/],
    ['a wrong type (keyword as number)', (r) => (r.process.user.id = 101), /^process\.user\.id: expected a string \(keyword\)/],
    ['a wrong type (long as string)', (r) => (r.source.port = '51544'), /^source\.port: expected an integer in range \(long\)/],
    ['a bad ip', (r) => (r.source.ip = 'nope'), /^source\.ip: expected an IP address \(ip\)/],
    ['a bad date', (r) => (r['@timestamp'] = 'yesterday'), /^@timestamp: expected an RFC 3339 date/],
    [
      'a value for an array field',
      (r) => (r.event.category = 'network'),
      /^event\.category: ECS normalizes this field to an array/,
    ],
    [
      'an array for a single-valued field',
      (r) => (r.event.action = ['accept4']),
      /^event\.action: an array, but ECS does not normalize/,
    ],
    ['a value not allowed', (r) => (r.event.kind = 'accept'), /^event\.kind: "accept" is not an allowed value/],
    [
      'a type the category does not expect',
      (r) => (r.event.type = ['creation']),
      /^event\.type: creation is not an expected type of event\.category network/,
    ],
    ['a wrong ecs.version', (r) => (r.ecs.version = '8.16.0'), /^ecs\.version: 8\.16\.0, expected 8\.11\.0/],
  ];
  for (const [what, edit, expected] of ecsCases) {
    it(`ECS: ${what}`, () => {
      const problems = validateEcs(ecs, edited('ecs', edit));
      assert.ok(
        problems.some((p) => expected.test(p)),
        `expected a problem matching ${expected}, got ${JSON.stringify(problems)}`,
      );
    });
  }
});
