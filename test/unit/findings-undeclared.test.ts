import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { governingFor } from '../../src/findings/governing.js';
import { type Governing, isDeclared, isLoopbackOnly, UndeclaredListenerDetector } from '../../src/findings/undeclared.js';
import { type AcceptEvent, AddressFamily, EnrichmentStatus, EventKind } from '../../src/gen/doorwatch/v1/event.js';
import type { DeclaredPortMeta } from '../../src/kube/types.js';
import { parsePolicyConfig } from '../../src/policy/config.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { SAMPLE_DECLARED, sampleListener } from '../helpers/sample-findings.js';

const UID = '0f3c-uid'; // the sample pod's

function detector(o: { declared?: readonly DeclaredPortMeta[]; governing?: (ev: AcceptEvent) => Governing; max?: number } = {}) {
  const emitted: AcceptEvent[] = [];
  const d = new UndeclaredListenerDetector({
    declaredPorts: (uid) => (uid === UID ? (o.declared ?? SAMPLE_DECLARED) : undefined),
    governing: o.governing ?? (() => ({ action: 'finding' })),
    emit: (b) => emitted.push(...b),
    ...(o.max ? { maxTracked: o.max } : {}),
  });
  return { d, emitted };
}

const closed = (ev: AcceptEvent): AcceptEvent => ({ ...ev, kind: EventKind.EVENT_KIND_LISTENER_CLOSED });

describe('undeclared-listener rule', () => {
  it('a listener on an undeclared port raises one finding with what was compared', () => {
    const { d } = detector();
    const [f, ...more] = d.observe(sampleListener(9999));
    assert.equal(more.length, 0);
    assert.equal(f!.kind, EventKind.EVENT_KIND_FINDING);
    const info = f!.findingInfo!;
    assert.equal(info.ruleId, 'undeclared-listener');
    assert.equal(info.uid, `undeclared-listener/${UID}/TCP/9999`);
    assert.equal(info.port, 9999);
    assert.equal(info.protocol, 'TCP');
    assert.deepEqual(
      info.declaredPorts.map((p) => `${p.containerPort}/${p.protocol}/${p.container}`),
      ['443/TCP/web', '9113/TCP/exporter'],
    );
    assert.match(info.title, /^pod shop\/web-7d9f-abc listens on 0\.0\.0\.0:9999\/TCP, a port none of its containers declares$/);
    assert.match(info.reason, /declared: 443\/TCP \(web\), 9113\/TCP \(exporter\)/);
    // The listener record rides along: who, where, which socket.
    assert.equal(f!.process?.comm, 'nginx');
    assert.equal(f!.listenerInfo?.inode, 4242n);
    assert.equal(f!.eventId, '');
    assert.equal(d.stats().findings, 1);
  });

  it('a declared port, a loopback-only listener, a unix socket or a host process raise none', () => {
    const { d } = detector();
    assert.deepEqual(d.observe(sampleListener(443)), []);
    assert.deepEqual(d.observe(sampleListener(9999, '127.0.0.1', EventKind.EVENT_KIND_LISTEN, 1n)), []);
    assert.deepEqual(d.observe(sampleListener(9999, '::1', EventKind.EVENT_KIND_LISTEN, 2n)), []);
    const unix = sampleListener(0, '', EventKind.EVENT_KIND_LISTEN, 3n);
    unix.socket!.family = AddressFamily.ADDRESS_FAMILY_UNIX;
    unix.socket!.unixPath = '/run/app.sock';
    assert.deepEqual(d.observe(unix), []);
    const host = sampleListener(9999, '0.0.0.0', EventKind.EVENT_KIND_LISTEN, 4n);
    host.pod = undefined;
    host.enrichment!.status = EnrichmentStatus.ENRICHMENT_STATUS_HOST;
    assert.deepEqual(d.observe(host), []);
    const s = d.stats().skipped;
    assert.deepEqual([s.declared, s.loopback, s.not_tcp, s.no_pod, d.stats().findings], [1, 2, 1, 1, 0]);
  });

  it('the same port as UDP is not declared for TCP; a hostNetwork pod may declare it as hostPort', () => {
    assert.equal(
      isDeclared([{ containerPort: 53, hostPort: 0, protocol: 'UDP', container: 'c', name: '' }], 53, 'TCP', false),
      false,
    );
    const hp = [{ containerPort: 8080, hostPort: 18080, protocol: 'TCP', container: 'c', name: '' }];
    assert.equal(isDeclared(hp, 18080, 'TCP', true), true);
    // In its own network namespace the pod listens on containerPort: the hostPort is the node's side.
    assert.equal(isDeclared(hp, 18080, 'TCP', false), false);
    assert.equal(isDeclared(hp, 8080, 'TCP', false), true);
  });

  it('loopback means loopback only: wildcards and the v4-mapped loopback are told apart', () => {
    assert.deepEqual(
      ['127.0.0.1', '127.9.9.9', '::1', '::ffff:127.0.0.1', '0.0.0.0', '::', '10.0.0.5', '::ffff:10.0.0.5'].map(isLoopbackOnly),
      [true, true, true, true, false, false, false, false],
    );
  });

  it('re-sent state records, the IPv6 sibling and SO_REUSEPORT siblings raise no second finding', () => {
    const { d } = detector();
    assert.equal(d.observe(sampleListener(9999)).length, 1);
    for (let i = 0; i < 5; i++) assert.deepEqual(d.observe(sampleListener(9999, '0.0.0.0', EventKind.EVENT_KIND_LISTENER)), []);
    assert.deepEqual(d.observe(sampleListener(9999, '::', EventKind.EVENT_KIND_LISTEN, 4243n)), []);
    assert.equal(d.stats().findings, 1);
    assert.equal(d.stats().skipped.duplicate, 6);
    assert.equal(d.stats().tracked, 1);
  });

  it('raised again only once every listener of the port has closed and one listens again', () => {
    const { d } = detector();
    const v4 = sampleListener(9999);
    const v6 = sampleListener(9999, '::', EventKind.EVENT_KIND_LISTEN, 4243n);
    assert.equal(d.observe(v4).length, 1);
    assert.equal(d.observe(v6).length, 0);
    d.observe(closed(v4));
    assert.equal(d.observe(sampleListener(9999, '0.0.0.0', EventKind.EVENT_KIND_LISTEN, 5000n)).length, 0, 'v6 still listens');
    d.observe(closed(v6));
    d.observe(closed(sampleListener(9999, '0.0.0.0', EventKind.EVENT_KIND_LISTEN, 5000n)));
    assert.equal(d.stats().tracked, 0);
    assert.equal(d.observe(sampleListener(9999, '0.0.0.0', EventKind.EVENT_KIND_LISTEN, 6000n)).length, 1);
    assert.equal(d.stats().findings, 2);
  });

  it('a pod the informer no longer knows, or a record not attributed to its pod yet, is not judged', () => {
    const { d } = detector();
    const other = sampleListener(9999);
    other.pod!.uid = 'gone';
    assert.deepEqual(d.observe(other), []);
    const partial = sampleListener(9999, '0.0.0.0', EventKind.EVENT_KIND_LISTEN, 5n);
    partial.pod = undefined;
    partial.enrichment!.status = EnrichmentStatus.ENRICHMENT_STATUS_PARTIAL;
    assert.deepEqual(d.observe(partial), []);
    assert.equal(d.stats().skipped.pod_unknown, 2);
    assert.equal(d.stats().skipped.no_pod, 0);
    // Judged when it comes again attributed (the next re-send).
    assert.equal(d.observe(sampleListener(9999, '0.0.0.0', EventKind.EVENT_KIND_LISTENER, 5n)).length, 1);
  });

  it('policy off: none, counted; held while the policies load, then judged', () => {
    const off = detector({ governing: () => ({ action: 'off' }) });
    assert.deepEqual(off.d.observe(sampleListener(9999)), []);
    assert.equal(off.d.stats().skipped.policy_off, 1);
    assert.equal(off.d.stats().tracked, 0, 'an off pod is judged again at each re-send (the policy may change)');

    let ready = false;
    const held = detector({ governing: () => (ready ? { action: 'finding' } : 'not-ready') });
    assert.deepEqual(held.d.observe(sampleListener(9999)), []);
    assert.equal(held.d.stats().held, 1);
    held.d.retry();
    assert.equal(held.emitted.length, 0);
    ready = true;
    held.d.retry();
    assert.equal(held.emitted.length, 1);
    assert.equal(held.emitted[0]!.findingInfo?.port, 9999);
    assert.equal(held.d.stats().held, 0);
    // A held listener that closes is forgotten.
    ready = false;
    const l = sampleListener(7777, '0.0.0.0', EventKind.EVENT_KIND_LISTEN, 77n);
    held.d.observe(l);
    held.d.observe(closed(l));
    ready = true;
    held.d.retry();
    assert.equal(held.emitted.length, 1);
  });

  it('a full dedup table still raises the finding, counted as untracked', () => {
    const { d } = detector({ max: 1 });
    assert.equal(d.observe(sampleListener(9999)).length, 1);
    assert.equal(d.observe(sampleListener(9998, '0.0.0.0', EventKind.EVENT_KIND_LISTEN, 1n)).length, 1);
    assert.equal(d.stats().untracked, 1);
    assert.equal(d.stats().tracked, 1);
  });
});

describe('undeclared-listener rule: the governing policy', () => {
  const engine = (raw: unknown) =>
    new PolicyEngine(parsePolicyConfig(raw, { source: 'test', defaultAdminNamespace: 'doorwatch' }));
  const ev = sampleListener(9999);

  it('without audit policies every pod raises findings', () => {
    assert.deepEqual(governingFor(undefined)(ev), { action: 'finding' });
  });

  it('not ready until the policies are loaded', () => {
    assert.equal(governingFor({ engine: engine({}), ready: () => false })(ev), 'not-ready');
  });

  it('the policy that governs the pod decides, by the engine precedence; the default when it says nothing', () => {
    const e = engine({
      default: { mode: 'events', listeners: { undeclared: 'off' } },
      rules: [{ name: 'shop', namespaces: ['shop'], mode: 'summary', listeners: { undeclared: 'finding' } }],
    });
    const g = governingFor({ engine: e, ready: () => true })(ev);
    assert.notEqual(g, 'not-ready');
    assert.equal((g as Exclude<Governing, 'not-ready'>).action, 'finding');
    assert.equal((g as Exclude<Governing, 'not-ready'>).ref?.name, 'shop');
    const elsewhere = sampleListener(9999);
    elsewhere.pod!.namespace = 'ci';
    assert.equal((governingFor({ engine: e, ready: () => true })(elsewhere) as { action: string }).action, 'off');
    const silent = engine({ rules: [{ name: 'shop', namespaces: ['shop'], mode: 'off' }] });
    // mode governs accepts; listeners.undeclared absent = finding.
    assert.equal((governingFor({ engine: silent, ready: () => true })(ev) as { action: string }).action, 'finding');
  });
});
