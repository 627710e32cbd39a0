import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { eventToJson, eventToJsonLine } from '../../src/formats/native-json.js';
import {
  AcceptEvent,
  AddressFamily,
  AuditMode,
  AuditPolicyRef,
  EventKind,
  PolicyOrigin,
  Source,
  SummaryReason,
} from '../../src/gen/doorwatch/v1/event.js';
import { SAMPLE_POLICY, sampleEvent, sampleSummary } from '../helpers/sample-events.js';

// Every field of every message in the .proto, as lowerCamelCase JSON names.
function protoFields(): Map<string, string[]> {
  const proto = readFileSync(new URL('../../proto/doorwatch/v1/event.proto', import.meta.url), 'utf8');
  const out = new Map<string, string[]>();
  for (const m of proto.matchAll(/^message (\w+) \{([\s\S]*?)^\}/gm)) {
    const fields = [...m[2]!.matchAll(/^\s+(?:repeated\s+)?[\w.]+\s+(\w+)\s*=\s*\d+;/gm)].map((f) =>
      f[1]!.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()),
    );
    out.set(m[1]!, fields);
  }
  return out;
}

const full = AcceptEvent.fromPartial({
  eventId: 'b/i/1',
  seq: 1n,
  source: Source.SOURCE_ACCEPT,
  process: { pid: 1 },
  socket: { family: AddressFamily.ADDRESS_FAMILY_INET, local: {}, peer: {} },
  listener: {},
  userAddress: {},
  namespaces: {},
  cgroup: { id: 12345678901234567890n },
  kind: EventKind.EVENT_KIND_SUMMARY,
  summary: { reason: SummaryReason.SUMMARY_REASON_MODE, count: 18446744073709551615n },
  policy: { origin: PolicyOrigin.POLICY_ORIGIN_CONFIG_DEFAULT, name: 'default', mode: AuditMode.AUDIT_MODE_SUMMARY },
});

describe('native JSON', () => {
  it('emits every proto field, defaults included', () => {
    const json = eventToJson(full);
    const fields = protoFields();
    assert.deepEqual(Object.keys(json).sort(), [...fields.get('AcceptEvent')!].sort());
    const nested: Record<string, string> = {
      process: 'Process',
      socket: 'Socket',
      listener: 'Listener',
      userAddress: 'UserAddress',
      namespaces: 'Namespaces',
      cgroup: 'Cgroup',
      summary: 'AcceptSummary',
      policy: 'AuditPolicyRef',
    };
    for (const [key, msg] of Object.entries(nested)) {
      assert.deepEqual(Object.keys(json[key] as object).sort(), [...fields.get(msg)!].sort(), key);
    }
    assert.deepEqual(Object.keys((json.socket as Record<string, object>).peer!).sort(), fields.get('Endpoint')!.sort());
  });

  it('uses the canonical mapping: 64-bit as strings, enums by name', () => {
    const json = eventToJson(full);
    assert.equal(json.seq, '1');
    assert.equal(json.source, 'SOURCE_ACCEPT');
    assert.equal((json.socket as Record<string, unknown>).family, 'ADDRESS_FAMILY_INET');
    assert.equal((json.cgroup as Record<string, unknown>).id, '12345678901234567890');
    assert.equal(json.success, false);
    assert.equal(json.kind, 'EVENT_KIND_SUMMARY');
    assert.deepEqual(json.summary, {
      reason: 'SUMMARY_REASON_MODE',
      count: '18446744073709551615',
      failedCount: '0',
      firstTimeUnixNano: '0',
      lastTimeUnixNano: '0',
      intervalStartUnixNano: '0',
      intervalEndUnixNano: '0',
      localPort: 0,
      peerIp: '',
      peersFolded: false,
    });
    assert.deepEqual(json.policy, { origin: 'POLICY_ORIGIN_CONFIG_DEFAULT', name: 'default', mode: 'AUDIT_MODE_SUMMARY' });
  });

  it('writes a record from a producer without policies as kind UNSPECIFIED, summary and policy null', () => {
    const json = eventToJson(sampleEvent());
    assert.equal(json.kind, 'EVENT_KIND_UNSPECIFIED');
    assert.equal(json.summary, null);
    assert.equal(json.policy, null);
  });

  it('the fast line writer produces exactly the generic JSON, for sparse and full events', () => {
    const rich = AcceptEvent.fromPartial({
      ...full,
      error: 'quote " backslash \\ newline \n and ünïcode',
      acceptFlagNames: ['SOCK_NONBLOCK', 'SOCK_CLOEXEC'],
      flags: ['NO_ENTER'],
      socket: {
        family: AddressFamily.ADDRESS_FAMILY_INET6,
        local: { ip: '::1', port: 1 },
        peer: { ip: '::1', port: 2 },
        unixPath: '@x',
      },
      container: { id: 'c', runtime: 'containerd', name: 'n', image: 'i', imageId: 'd', cgroupPath: '/p' },
      pod: { namespace: 'ns', name: 'p', uid: 'u', labels: { a: '1', 'b/c': '"' }, workload: { kind: 'Deployment', name: 'w' } },
      enrichment: { status: 1, missing: ['pod'], reason: 'r', waitedMs: 5 },
    });
    const folded = sampleSummary({
      summary: { failedCount: 3n, peerIp: '', peersFolded: true },
      policy: { name: 'ns/"quoted\\name"', mode: AuditMode.AUDIT_MODE_SUMMARY },
    });
    const odd = AcceptEvent.fromPartial({ kind: 7 as EventKind, summary: {}, policy: {} });
    for (const ev of [full, rich, AcceptEvent.fromPartial({}), sampleEvent(), sampleSummary(), folded, odd]) {
      assert.equal(eventToJsonLine(ev), JSON.stringify(eventToJson(ev)));
    }
  });

  it('the line writer’s remembered policy never leaks into an event with another, or none', () => {
    const accept = (policy?: AuditPolicyRef) => {
      const ev = sampleEvent({ kind: EventKind.EVENT_KIND_ACCEPT });
      ev.policy = policy; // one object shared by many events, as the agent does
      return ev;
    };
    const shared = AuditPolicyRef.fromPartial(SAMPLE_POLICY);
    const events = [
      accept(shared),
      accept(shared),
      accept({ ...shared, name: 'shop/other' }),
      accept({ ...shared, mode: AuditMode.AUDIT_MODE_SUMMARY }),
      accept({ ...shared, origin: PolicyOrigin.POLICY_ORIGIN_HOST }),
      accept(undefined),
      accept(shared),
    ];
    for (const ev of events) assert.equal(eventToJsonLine(ev), JSON.stringify(eventToJson(ev)));
    // The shared object changed in place between two events is written as it is now.
    shared.name = 'shop/renamed';
    assert.equal(JSON.parse(eventToJsonLine(events[0]!)).policy.name, 'shop/renamed');
    shared.mode = AuditMode.AUDIT_MODE_OFF;
    assert.equal(JSON.parse(eventToJsonLine(events[1]!)).policy.mode, 'AUDIT_MODE_OFF');
  });

  it('reads back losslessly with the generated fromJSON', () => {
    for (const ev of [full, sampleEvent(), sampleSummary()]) {
      assert.deepEqual(AcceptEvent.fromJSON(JSON.parse(eventToJsonLine(ev))), ev);
    }
  });
});
