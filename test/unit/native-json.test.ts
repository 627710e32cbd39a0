import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { eventToJson, eventToJsonLine, JsonWriter, writeEventJson } from '../../src/formats/native-json.js';
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
import { SAMPLE_POLICY, sampleEvent, sampleHostEvent, sampleSummary, sampleUnixEvent } from '../helpers/sample-events.js';

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

  it('the byte writer equals the generic walk for odd strings and numbers in every field', () => {
    // Each string field gets text that needs escaping, UTF-8, a lone surrogate, or nothing special.
    const odd = ['', 'plain', 'quote " back \\ slash', 'tab\tnl\ncr\rnul\u0000\u001f', 'ünï ☃ 𝄞', 'lone \ud800 x', '\u007f~'];
    const nums = [0, 1, 9, 10, 99, 100, 65535, 2 ** 31 - 1, 2 ** 32 - 1, -1, -9, -10, -(2 ** 31)];
    const bigs = [0n, 1n, 10n, 0xffffffffffn, 0x10000000000n, 2n ** 53n + 1n, 2n ** 64n - 1n];
    let i = 0;
    const str = () => odd[i++ % odd.length]!;
    const num = () => nums[i++ % nums.length]!;
    const big = () => bigs[i++ % bigs.length]!;
    for (let round = 0; round < 40; round++) {
      const ev = AcceptEvent.fromPartial({
        eventId: str(),
        seq: big(),
        timeUnixNano: big(),
        ktimeNs: big(),
        nodeName: str(),
        source: round % 5,
        ret: num(),
        success: round % 2 === 0,
        error: str(),
        durationNs: big(),
        acceptFlags: num(),
        acceptFlagNames: round % 3 ? [str(), str()] : [],
        flags: [str()],
        process: { pid: num(), tid: num(), ppid: num(), uid: num(), gid: num(), comm: str() },
        socket: {
          family: round % 6,
          familyNumber: num(),
          type: str(),
          protocol: num(),
          local: round % 4 ? { ip: str(), port: num() } : undefined,
          peer: { ip: str(), port: num() },
          v4Mapped: round % 3 === 0,
          unixPath: str(),
          peerPid: num(),
          resolved: round % 2 === 1,
        },
        listener: round % 7 ? { fd: num(), backlog: num(), maxBacklog: num(), resolved: true } : undefined,
        userAddress: { present: true, addrlen: num(), familyNumber: num(), ip: str(), port: num(), fault: false, mismatch: true },
        namespaces: { mnt: num(), pid: num(), net: num(), uts: num() },
        cgroup: { id: big(), v1Id: big() },
        container:
          round % 3 ? { id: str(), runtime: str(), name: str(), image: str(), imageId: str(), cgroupPath: str() } : undefined,
        pod:
          round % 4
            ? {
                namespace: str(),
                name: str(),
                uid: str(),
                labels: { [str()]: str(), '10': 'int-like key first', z: str() },
                annotations: {},
                workload: round % 2 ? { kind: str(), name: str(), inferred: true } : undefined,
                serviceAccount: str(),
                nodeName: str(),
                ip: str(),
                hostNetwork: true,
                qosClass: str(),
                namespaceLabels: { [str()]: str() },
                deleted: round % 5 === 0,
              }
            : undefined,
        enrichment: {
          status: round % 5,
          missing: round % 2 ? [str()] : [],
          reason: str(),
          cgroupFromProc: true,
          waitedMs: num(),
        },
        kind: round % 4,
        summary: round % 9 === 0 ? { peerIp: str(), count: big() } : undefined,
        policy: round % 3 === 0 ? { origin: round % 4, name: str(), mode: round % 5 } : undefined,
      });
      assert.equal(eventToJsonLine(ev), JSON.stringify(eventToJson(ev)), `round ${round}`);
    }
  });

  it('a shared Pod is encoded once and reused; other pods and changed containers are written as they are', () => {
    const a = sampleEvent();
    const b = sampleEvent({ seq: 43n });
    b.pod = a.pod; // one Pod object per pod version, as the enricher shares it
    const other = sampleEvent({ pod: { name: 'web-other', labels: { app: 'other' } } });
    const c2 = sampleEvent({ container: { name: 'sidecar' } });
    const c3 = sampleEvent({ container: { cgroupPath: '/kubepods.slice/y' } });
    for (const ev of [a, b, other, a, c2, c3, c2, sampleHostEvent(), sampleUnixEvent(), a]) {
      assert.equal(eventToJsonLine(ev), JSON.stringify(eventToJson(ev)));
    }
    // A container object reused and changed in place between events is written as it is now.
    const ev = sampleEvent();
    assert.equal(eventToJsonLine(ev), JSON.stringify(eventToJson(ev)));
    ev.container!.name = 'renamed';
    assert.equal(JSON.parse(eventToJsonLine(ev)).container.name, 'renamed');
  });

  it('remembered segments per process and pod: interleaved sources each write their own, changes included', () => {
    // Three pods, two processes each, cycled as a busy node's events interleave; then one process's
    // comm and one pod's container change while the others keep going.
    const pods = [0, 1, 2].map((i) => sampleEvent({ pod: { name: `web-${i}`, uid: `uid-${i}` } }).pod);
    const ev = (pod: number, proc: number, seq: number) => {
      const e = sampleEvent({ seq: BigInt(seq), process: { pid: 100 * pod + proc, comm: `srv-${pod}` } });
      e.pod = pods[pod];
      e.container!.name = `c-${pod}`;
      e.socket!.peer!.ip = `10.9.${seq % 7}.${pod}`;
      return e;
    };
    const lines = new Set<string>();
    for (let seq = 0; seq < 60; seq++) {
      const e = ev(seq % 3, seq % 2, seq);
      if (seq > 30 && seq % 3 === 1) e.process!.comm = 'renamed';
      if (seq > 40 && seq % 3 === 2) e.container!.image = 'web:2';
      const line = eventToJsonLine(e);
      assert.equal(line, JSON.stringify(eventToJson(e)), `event ${seq}`);
      lines.add(line);
    }
    assert.equal(lines.size, 60);
  });

  it('remembered segments: changing any single field between events is written (every leaf, both ways)', () => {
    const base = () => {
      const ev = sampleEvent({ kind: EventKind.EVENT_KIND_ACCEPT });
      ev.policy = AuditPolicyRef.fromPartial(SAMPLE_POLICY);
      return ev;
    };
    // Every leaf of a fully populated event, as a path.
    const leaves: string[][] = [];
    const walk = (o: Record<string, unknown>, path: string[]) => {
      for (const [k, v] of Object.entries(o)) {
        if (v === undefined) continue; // unset sub-messages: below
        if (v !== null && typeof v === 'object' && !Array.isArray(v) && !['labels', 'annotations', 'namespaceLabels'].includes(k))
          walk(v as Record<string, unknown>, [...path, k]);
        else leaves.push([...path, k]);
      }
    };
    walk(base() as unknown as Record<string, unknown>, []);
    assert.ok(leaves.length > 60, `${leaves.length} leaves`);
    const changed = (path: string[]) => {
      const ev = base();
      let o = ev as unknown as Record<string, unknown>;
      for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
      const k = path[path.length - 1]!;
      const v = o[k];
      if (typeof v === 'string') o[k] = `${v}x`;
      else if (typeof v === 'number') o[k] = v + 1;
      else if (typeof v === 'boolean') o[k] = !v;
      else if (typeof v === 'bigint') o[k] = v + 1n;
      else if (Array.isArray(v)) o[k] = [...v, 'X'];
      else o[k] = { ...(v as object), extra: 'y' }; // a label map
      return ev;
    };
    const check = (ev: AcceptEvent, what: string) => assert.equal(eventToJsonLine(ev), JSON.stringify(eventToJson(ev)), what);
    for (const path of leaves) {
      check(base(), 'base');
      check(changed(path), path.join('.'));
      check(changed(path), `${path.join('.')} again`);
    }
    // Sub-messages present or not, one at a time.
    for (const k of ['container', 'pod', 'enrichment', 'policy', 'local'] as const) {
      check(base(), 'base');
      const ev = base();
      if (k === 'local') ev.socket!.local = undefined;
      else ev[k] = undefined;
      check(ev, `no ${k}`);
      check(base(), 'base after');
    }
    // An array changed in place after it was written.
    const ev = base();
    const names = ['SOCK_CLOEXEC'];
    ev.acceptFlagNames = names;
    check(ev, 'names');
    names.push('SOCK_NONBLOCK');
    check(ev, 'names changed in place');
  });

  it('writes every 64-bit value as BigInt.toString() does: edges of each digit split, and a seeded random corpus', () => {
    const edges = [0n, 9n, 0x7fffffffn, 0x80000000n, 999_999_999n, 1_000_000_000n, 1_000_000_001n, 0xffffffffn, 2n ** 32n];
    edges.push(10n ** 18n - 1n, 10n ** 18n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n, -1n, -(2n ** 63n));
    edges.push(19_999_999_999_000_000_000n - 1n, 1_765_000_000_123_456_789n, 18_999_999_999n * 1_000_000_000n);
    let seed = 0x2545f491;
    const rand32 = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return BigInt(seed >>> 0);
    };
    const w = new JsonWriter(8);
    for (let i = 0; i < 50_000; i++) {
      const v = i < edges.length ? edges[i]! : ((rand32() << 32n) | rand32()) >> BigInt(i % 64);
      w.reset();
      w.big(v);
      assert.equal(w.buf.toString('latin1', 0, w.pos), v.toString(), `value ${v}`);
    }
  });

  it('appends lines into one buffer, growing it when an event does not fit', () => {
    const w = new JsonWriter(16);
    const events = [sampleEvent(), sampleHostEvent(), sampleEvent({ pod: { labels: { big: 'x'.repeat(100_000) } } })];
    const want: string[] = [];
    for (const ev of events) {
      writeEventJson(w, ev);
      w.byte(0x0a);
      want.push(`${JSON.stringify(eventToJson(ev))}\n`);
    }
    assert.equal(w.buf.toString('utf8', 0, w.pos), want.join(''));
    w.reset();
    writeEventJson(w, events[1]!);
    assert.equal(w.buf.toString('utf8', 0, w.pos), JSON.stringify(eventToJson(events[1]!)));
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
