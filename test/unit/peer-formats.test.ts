import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EXTERNAL, LOOPBACK, NO_ADDRESS, NOT_FOUND, NOT_SYNCED } from '../../src/collector/peers/attributor.js';
import { OwnerFactory } from '../../src/collector/peers/objects.js';
import { formatLine, formatRecord } from '../../src/formats/format.js';
import { eventToJsonLine } from '../../src/formats/native-json.js';
import { AcceptEvent, type AddressAttribution } from '../../src/gen/doorwatch/v1/event.js';
import { ALL_KEYS, compileAllowList } from '../../src/kube/allow-list.js';
import type { SinkRecord } from '../../src/sinks/sink.js';
import { sampleEvent } from '../helpers/sample-events.js';
import { loadEcs, validateEcs } from '../helpers/schemas/ecs.js';
import { loadOcsf, validateOcsf } from '../helpers/schemas/ocsf.js';

/**
 * Peer and local attribution in every format: the native line reads back losslessly, and OCSF 1.7.0 /
 * ECS 8.11.0 records stay valid under the upstream schemas (test/helpers/schemas) with each kind of
 * attribution, as the collector's attributor produces them (shared frozen objects).
 */

const f = new OwnerFactory(compileAllowList(undefined, ALL_KEYS));
const peerPod = f.pod({
  metadata: {
    name: 'client-5d8f-x2v9q',
    namespace: 'shop',
    uid: 'uid-client',
    labels: { app: 'client', 'pod-template-hash': '5d8f' },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'client-5d8f', uid: 'rs', controller: true }],
  },
  spec: { nodeName: 'node-b', containers: [] },
  status: { phase: 'Running', podIP: '10.244.2.7' },
}).attr;
const service = f.service({
  metadata: { name: 'front', namespace: 'shop', uid: 'uid-svc', labels: { tier: 'edge' } },
  spec: { clusterIP: '10.96.0.10' },
}).attr;
const node = f.node({
  metadata: { name: 'node-b', uid: 'uid-node' },
  status: { addresses: [{ type: 'InternalIP', address: '192.168.1.2' }] },
}).attr;

const cases: [string, AddressAttribution, AddressAttribution][] = [
  ['peer pod, local Service', peerPod, service],
  ['peer node, local pod', node, peerPod],
  ['peer Service', service, NOT_FOUND],
  ['external', EXTERNAL, NOT_SYNCED],
  ['loopback', LOOPBACK, LOOPBACK],
  ['no address', NO_ADDRESS, NO_ADDRESS],
];

// OCSF pod_uuid is uuid_t: the sample pod gets a real one.
const POD = { pod: { uid: '6f1c2b9e-3d4a-4c5b-8e7f-0a1b2c3d4e5f' } };
const ocsf = loadOcsf();
const ecs = loadEcs();

describe('peer attribution in the formats', () => {
  for (const [name, peer, local] of cases) {
    const ev = sampleEvent(POD);
    ev.peerAttribution = peer;
    ev.localAttribution = local;
    const rec: SinkRecord = { kind: 'event', event: ev };

    it(`native JSON reads back: ${name}`, () => {
      const line = eventToJsonLine(ev);
      assert.deepEqual(AcceptEvent.fromJSON(JSON.parse(line)), AcceptEvent.fromPartial(ev));
      const j = JSON.parse(line);
      assert.equal(
        j.peerAttribution.status,
        (AcceptEvent.toJSON(ev) as { peerAttribution: { status: string } }).peerAttribution.status,
      );
      // Written twice (the per-object cache) the same.
      assert.equal(eventToJsonLine(ev), line);
    });

    it(`OCSF ${ocsf.version} valid: ${name}`, () => {
      const obj = formatRecord(rec, 'ocsf') as Record<string, unknown>;
      assert.deepEqual(validateOcsf(ocsf, obj as never), []);
      assert.deepEqual(JSON.parse(formatLine(rec, 'ocsf')), JSON.parse(JSON.stringify(obj)), 'the line writer agrees');
    });

    it(`ECS ${ecs.version} valid: ${name}`, () => {
      assert.deepEqual(validateEcs(ecs, formatRecord(rec, 'ecs') as never), []);
      assert.deepEqual(validateEcs(ecs, JSON.parse(formatLine(rec, 'ecs'))), []);
    });
  }

  it('OCSF: a resolved peer names the endpoint; namespace, workload and labels go to unmapped', () => {
    const ev = sampleEvent(POD);
    ev.peerAttribution = peerPod;
    ev.localAttribution = service;
    const o = JSON.parse(formatLine({ kind: 'event', event: ev }, 'ocsf'));
    assert.equal(o.src_endpoint.name, 'client-5d8f-x2v9q');
    assert.equal(o.src_endpoint.uid, 'uid-client');
    assert.equal(o.src_endpoint.type_id, 99);
    assert.equal(o.src_endpoint.type, 'Pod');
    assert.equal(o.dst_endpoint.svc_name, 'front');
    assert.deepEqual(o.unmapped.peer_attribution.workload, { kind: 'Deployment', name: 'client', inferred: false });
    assert.equal(o.unmapped.peer_attribution.namespace, 'shop');
    assert.equal(o.unmapped.local_attribution.kind, 'service');
  });

  it('ECS: doorwatch.peer_attribution (a custom namespace: ECS 8.11 source.* has no Kubernetes fields)', () => {
    const ev = sampleEvent(POD);
    ev.peerAttribution = NOT_FOUND;
    const e = JSON.parse(formatLine({ kind: 'event', event: ev }, 'ecs'));
    assert.equal(e.doorwatch.peer_attribution.status, 'unknown');
    assert.equal(e.doorwatch.peer_attribution.reason, 'not found');
  });
});
