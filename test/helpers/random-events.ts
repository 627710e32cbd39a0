import {
  type AcceptEvent,
  AddressFamily,
  AttributionStatus,
  AuditMode,
  EventKind,
  OwnerKind,
  PolicyOrigin,
  Source,
  SummaryReason,
} from '../../src/gen/doorwatch/v1/event.js';
import { sampleEvent, sampleHostEvent, sampleSummary, sampleUnixEvent } from './sample-events.js';

/**
 * Seeded random events for tests that hold a fast path equal to its
 * reference over many shapes: randomCorpus for byte-level encoders (any
 * value in any field), plausibleRecords for the formats (records a producer
 * could send, with odd values where they matter: failures, unresolved and
 * unix sockets, v4-mapped and loopback peers, attributions, escapes).
 */

/** A deterministic PRNG (xorshift32) in [0, 1): the corpus is the same every run. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

const ALPHABET = ['a', 'Z', '0', '/', '-', '"', '\\', 'é', '✓', '😀', '\u0000', ' '];

/**
 * n events with every field random, strings included (escapes, non-ASCII, empty): for byte-level
 * encoders, which must not care what a field means.
 */
export function randomCorpus(n: number, seed: number): AcceptEvent[] {
  const r = rng(seed);
  const int = (max: number) => Math.floor(r() * max);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const str = (max: number) => {
    const len = r() < 0.2 ? 0 : int(max);
    let s = '';
    for (let i = 0; i < len; i++) s += r() < 0.8 ? String.fromCharCode(97 + int(26)) : pick(ALPHABET);
    return s;
  };
  const u32 = () => pick([0, 1, 127, 128, 16383, 16384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, int(2 ** 32)]);
  const i32 = () => pick([0, 1, -1, -2147483648, 2147483647, int(2 ** 16) - 2 ** 15]);
  const u64 = () =>
    pick([0n, 1n, 127n, 128n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 64n - 1n, BigInt(int(2 ** 32)) * 1000003n]);
  const maybe = <T>(make: () => T): T | undefined => (r() < 0.2 ? undefined : make());
  const map = () => Object.fromEntries(Array.from({ length: int(4) }, () => [str(20) || 'k', str(30)]));
  return Array.from({ length: n }, () => ({
    eventId: str(60),
    seq: u64(),
    timeUnixNano: u64(),
    ktimeNs: u64(),
    nodeName: pick(['', 'node-a', 'node-b', str(300)]),
    source: int(4),
    ret: i32(),
    success: r() < 0.5,
    error: str(10),
    durationNs: u64(),
    acceptFlags: u32(),
    acceptFlagNames: pick([[], ['SOCK_NONBLOCK'], ['SOCK_NONBLOCK', 'SOCK_CLOEXEC']]),
    flags: pick([[], ['NO_ENTER'], ['A', 'B', 'C']]),
    process: maybe(() => ({ pid: u32(), tid: u32(), ppid: u32(), uid: u32(), gid: u32(), comm: str(16) })),
    socket: maybe(() => ({
      family: int(5),
      familyNumber: u32(),
      type: str(8),
      protocol: u32(),
      local: maybe(() => ({ ip: str(40), port: u32() })),
      peer: maybe(() => ({ ip: str(40), port: u32() })),
      v4Mapped: r() < 0.5,
      unixPath: str(200),
      peerPid: u32(),
      resolved: r() < 0.5,
    })),
    listener: maybe(() => ({ fd: i32(), backlog: u32(), maxBacklog: u32(), resolved: r() < 0.5 })),
    userAddress: maybe(() => ({
      present: r() < 0.5,
      addrlen: u32(),
      familyNumber: u32(),
      ip: str(40),
      port: u32(),
      fault: r() < 0.5,
      mismatch: r() < 0.5,
    })),
    namespaces: maybe(() => ({ mnt: u32(), pid: u32(), net: u32(), uts: u32() })),
    cgroup: maybe(() => ({ id: u64(), v1Id: u64() })),
    container: maybe(() => ({
      id: str(64),
      runtime: str(10),
      name: str(20),
      image: str(80),
      imageId: str(150),
      cgroupPath: str(200),
    })),
    pod: maybe(() => ({
      namespace: str(20),
      name: str(40),
      uid: str(36),
      labels: map(),
      annotations: map(),
      workload: maybe(() => ({ kind: str(12), name: str(30), inferred: r() < 0.5 })),
      serviceAccount: str(20),
      nodeName: str(20),
      ip: str(15),
      hostNetwork: r() < 0.5,
      qosClass: str(10),
      namespaceLabels: map(),
      deleted: r() < 0.5,
    })),
    enrichment: maybe(() => ({
      status: int(4),
      missing: pick([[], ['pod'], ['pod', 'container']]),
      reason: str(150),
      cgroupFromProc: r() < 0.5,
      waitedMs: u32(),
    })),
    kind: int(3),
    summary: maybe(() => ({
      reason: int(3),
      count: u64(),
      failedCount: u64(),
      firstTimeUnixNano: u64(),
      lastTimeUnixNano: u64(),
      intervalStartUnixNano: u64(),
      intervalEndUnixNano: u64(),
      localPort: u32(),
      peerIp: str(40),
      peersFolded: r() < 0.5,
    })),
    policy: maybe(() => ({ origin: int(6), name: pick(['a', 'b', str(30)]), mode: int(4) })),
    // The agent never sets these (the collector does); its encoder leaves them out.
    peerAttribution: undefined,
    localAttribution: undefined,
    listenerInfo: maybe(() => ({ origin: int(5), inode: u64(), requestedBacklog: i32(), firstSeenUnixNano: u64() })),
    findingInfo: maybe(() => ({
      ruleId: 'undeclared-listener',
      uid: str(60),
      title: str(80),
      reason: str(120),
      port: u32(),
      protocol: pick(['TCP', 'UDP']),
      declaredPorts: [{ containerPort: u32(), hostPort: u32(), protocol: 'TCP', container: str(20), name: str(10) }],
    })),
  }));
}

const IPS_V4 = ['10.0.0.9', '127.0.0.1', '192.168.1.20', '0.0.0.0', '::ffff:10.1.2.3', '::ffff:127.0.0.1', ''];
const IPS_V6 = ['::1', 'fd00::5', '2001:db8::1', '::', '::ffff:10.9.8.7', ''];
const TEXT = ['nginx', 'web', '', 'a"b\\c', 'tab\tnew\nline', 'nœud-✓', 'x😀y', '\u2028', 'shop/web-audit'];

/** n records a producer could send: accepts of every outcome and socket kind, summaries and listener records among them. */
export function plausibleRecords(n: number, seed: number): AcceptEvent[] {
  const r = rng(seed);
  const int = (max: number) => Math.floor(r() * max);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const chance = (p: number) => r() < p;
  const attribution = () =>
    chance(0.5)
      ? undefined
      : {
          status: pick([AttributionStatus.ATTRIBUTION_STATUS_RESOLVED, AttributionStatus.ATTRIBUTION_STATUS_RESOLVED, int(8)]),
          reason: pick(['', 'not found']),
          kind: pick([OwnerKind.OWNER_KIND_POD, OwnerKind.OWNER_KIND_SERVICE, OwnerKind.OWNER_KIND_NODE, int(6)]),
          namespace: pick(TEXT),
          name: pick(TEXT),
          uid: pick(['', 'uid-1', '0f3c']),
          labels: (chance(0.5) ? {} : { app: pick(TEXT) }) as Record<string, string>,
          workload: chance(0.5) ? undefined : { kind: 'Deployment', name: pick(TEXT), inferred: chance(0.5) },
          nodeName: pick(['', 'node-b']),
        };
  return Array.from({ length: n }, (_, i) => {
    const base = pick([sampleEvent, sampleEvent, sampleEvent, sampleHostEvent, sampleUnixEvent, sampleSummary])();
    const family = pick([
      AddressFamily.ADDRESS_FAMILY_INET,
      AddressFamily.ADDRESS_FAMILY_INET6,
      AddressFamily.ADDRESS_FAMILY_UNIX,
      base.socket?.family ?? 0,
      int(6),
    ]);
    const ips = family === AddressFamily.ADDRESS_FAMILY_INET6 ? IPS_V6 : IPS_V4;
    const success = chance(0.8);
    const ev: AcceptEvent = {
      ...base,
      seq: pick([BigInt(i + 1), 2n ** 53n + BigInt(i), 2n ** 64n - 1n]),
      eventId: pick(['', `boot-1/inst-1/${i + 1}`]),
      timeUnixNano: pick([base.timeUnixNano + BigInt(i) * 1_234_567n, 0n, 999_999n, 2n ** 63n, 2n ** 64n - 1n]),
      nodeName: pick(['node-a', '', 'nœud "b"']),
      source: pick([Source.SOURCE_ACCEPT, Source.SOURCE_ACCEPT4, Source.SOURCE_IO_URING, int(9)]),
      success,
      ret: success ? int(1000) : -pick([11, 24, 103]),
      error: success ? '' : pick(['EMFILE', 'ECONNABORTED', '']),
      kind: chance(0.8)
        ? base.kind
        : pick([EventKind.EVENT_KIND_ACCEPT, EventKind.EVENT_KIND_LISTEN, EventKind.EVENT_KIND_LISTENER_CLOSED, int(9)]),
      process: chance(0.1) ? undefined : base.process && { ...base.process, comm: pick(TEXT), ppid: pick([0, 1, 4242]) },
      socket: chance(0.1)
        ? undefined
        : {
            ...(base.socket ?? { type: 'STREAM', familyNumber: 2, unixPath: '', peerPid: 0, v4Mapped: false }),
            family,
            protocol: pick([6, 17, 132, 262, 0, 99]),
            resolved: chance(0.85),
            v4Mapped: chance(0.2),
            local: chance(0.1) ? undefined : { ip: pick(ips), port: pick([0, 443, 8080, int(65536)]) },
            peer: chance(0.1) ? undefined : { ip: pick(ips), port: pick([0, 443, int(65536)]) },
            unixPath: pick(['', '/run/app.sock', 'a"b']),
            peerPid: pick([0, 4321]),
          },
      userAddress: chance(0.2)
        ? undefined
        : base.userAddress && { ...base.userAddress, mismatch: chance(0.1), present: chance(0.8) },
      pod: chance(0.1) ? undefined : base.pod && { ...base.pod, name: pick(TEXT), namespace: pick(TEXT) },
      policy: chance(0.5)
        ? undefined
        : {
            origin: pick([PolicyOrigin.POLICY_ORIGIN_RESOURCE, int(6)]),
            name: pick(TEXT),
            mode: pick([AuditMode.AUDIT_MODE_EVENTS, int(4)]),
          },
      peerAttribution: attribution(),
      localAttribution: attribution(),
    };
    if (ev.kind === EventKind.EVENT_KIND_SUMMARY && !ev.summary)
      ev.summary = {
        reason: pick([SummaryReason.SUMMARY_REASON_RATE_LIMIT, int(3)]),
        count: pick([1n, 57n, 2n ** 40n]),
        failedCount: pick([0n, 2n, 57n]),
        firstTimeUnixNano: ev.timeUnixNano,
        lastTimeUnixNano: ev.timeUnixNano + pick([0n, 9_876_000_000n]),
        intervalStartUnixNano: 0n,
        intervalEndUnixNano: 0n,
        localPort: pick([0, 443]),
        peerIp: pick(ips),
        peersFolded: chance(0.3),
      };
    return ev;
  });
}
