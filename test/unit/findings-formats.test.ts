import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeEvent } from '../../src/agent/event-encoder.js';
import { tableRow } from '../../src/cli/table.js';
import { decodePublishRequest } from '../../src/collector/wire.js';
import { formatLine, formatRecord } from '../../src/formats/format.js';
import { eventToJson, eventToJsonLine } from '../../src/formats/native-json.js';
import { TRACEE_FINDING_EVENT } from '../../src/formats/tracee.js';
import { PublishRequest } from '../../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { msgIdOf, severityOf } from '../../src/sinks/syslog.js';
import { sampleEvent } from '../helpers/sample-events.js';
import { sampleFinding } from '../helpers/sample-findings.js';
import { loadTraceeSource, validateTracee } from '../helpers/schemas/tracee.js';

const finding = sampleFinding();
const rec = { kind: 'event' as const, event: finding };

describe('finding records in every format', () => {
  it('native JSON: every field, findingInfo with its declared ports, read back losslessly; accepts carry findingInfo null', () => {
    const line = eventToJsonLine(finding);
    assert.equal(line, JSON.stringify(eventToJson(finding)));
    const j = JSON.parse(line);
    assert.equal(j.kind, 'EVENT_KIND_FINDING');
    assert.equal(j.findingInfo.ruleId, 'undeclared-listener');
    assert.equal(j.findingInfo.declaredPorts[0].containerPort, 443);
    assert.deepEqual(AcceptEvent.fromJSON(j), finding);
    const accept = JSON.parse(eventToJsonLine(sampleEvent()));
    assert.ok('findingInfo' in accept && accept.findingInfo === null);
  });

  it('OCSF: a Detection Finding (2004, Create) naming the rule, the pod and the listener', () => {
    // biome-ignore lint/suspicious/noExplicitAny: reads into arbitrary paths of a formatted record
    const o = formatRecord(rec, 'ocsf') as Record<string, any>;
    assert.equal(o.class_uid, 2004);
    assert.equal(o.type_uid, 200401);
    assert.equal(o.severity_id, 3);
    assert.equal(o.finding_info.uid, 'undeclared-listener/0f3c-uid/TCP/9999');
    assert.equal(o.finding_info.analytic.uid, 'undeclared-listener');
    assert.deepEqual(o.resources[0], {
      type: 'Pod',
      name: 'web-7d9f-abc',
      namespace: 'shop',
      uid: '0f3c-uid',
      ip: '10.0.0.5',
      labels: ['app.kubernetes.io/name=web', 'tier=front'],
    });
    assert.deepEqual(o.evidences[0].dst_endpoint, { ip: '0.0.0.0', port: 9999, hostname: 'node-a' });
    assert.equal(o.unmapped.finding.declared_ports.length, 2);
    assert.deepEqual(JSON.parse(formatLine(rec, 'ocsf')), o);
  });

  it('ECS: event.kind alert, category network, the rule in rule.*', () => {
    // biome-ignore lint/suspicious/noExplicitAny: reads into arbitrary paths of a formatted record
    const e = formatRecord(rec, 'ecs') as Record<string, any>;
    assert.equal(e.event.kind, 'alert');
    assert.deepEqual(e.event.category, ['network']);
    assert.equal(e.event.dataset, 'doorwatch.finding');
    assert.equal(e.rule.id, 'undeclared-listener');
    assert.equal(e.doorwatch.policy.name, 'shop/web-audit');
    assert.equal(e.source, undefined);
    assert.equal(e.destination.port, 9999);
  });

  it('Tracee: doorwatch_finding (3905), valid under the Tracee event shape', () => {
    const line = formatLine(rec, 'tracee');
    assert.deepEqual(validateTracee(loadTraceeSource(), line), []);
    const t = JSON.parse(line);
    assert.equal(t.eventId, String(TRACEE_FINDING_EVENT.id));
    assert.equal(t.eventName, 'doorwatch_finding');
    const args = Object.fromEntries(t.args.map((a: { name: string; value: unknown }) => [a.name, a.value]));
    assert.equal(args.rule_id, 'undeclared-listener');
    assert.equal(args.local_port, 9999);
    assert.equal(args.declared_ports, '443/TCP,9113/TCP');
  });

  it('the wire: the agent fast encoder and the collector decoder keep findingInfo', () => {
    const bytes = encodeEvent(finding);
    assert.deepEqual(AcceptEvent.decode(bytes), finding);
    const req = PublishRequest.encode({
      batch: { firstSeq: 43n, events: [finding], losses: undefined, contexts: [], eventContexts: [] },
    }).finish();
    const decoded = decodePublishRequest(req);
    assert.deepEqual(decoded.batch?.events[0]?.findingInfo, finding.findingInfo);
  });
});

describe('finding records in the trace/tail table', () => {
  it('say FINDING and the rule, no peer', () => {
    const row = tableRow(sampleFinding(), true);
    assert.match(row, /0\.0\.0\.0:9999 +- +FINDING /);
    assert.match(row, /undeclared-listener$/);
  });
});

describe('finding records in syslog', () => {
  it('are warnings with MSGID FINDING', () => {
    assert.equal(severityOf(rec), 4);
    assert.equal(msgIdOf(rec), 'FINDING');
  });
});
