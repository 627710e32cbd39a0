/**
 * `npm run bench -- --peer-index`: the collector's peer index (src/collector/peers) at the scale of
 * issue 12 — 5 000 nodes, 150 000 pods (30 per node, from 15 000 Deployments), 10 000 Services —
 * built from synthetic API objects through the same code the informers call (OwnerFactory -> PeerIndex).
 *
 * - bytes/address: heap after the build minus heap before (gc() between, --expose-gc), over the
 *   addresses indexed; the synthetic API objects are made one at a time and dropped, so only what
 *   the index keeps is counted (owners, interned labels/workloads, tables, holdings);
 * - lookup: index.lookup() of address text as events carry it, random addresses, and the
 *   attributor's whole per-address answer (classification included);
 * - update: a pod deleted and another created on its address (the IP-reuse churn), each an
 *   informer event: V1Pod -> attribution + index change, per event.
 */
import { availableParallelism, loadavg } from 'node:os';
import type { V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import { PeerAttributor } from '../src/collector/peers/attributor.js';
import { PeerIndex, Side } from '../src/collector/peers/index-store.js';
import { OwnerFactory } from '../src/collector/peers/objects.js';
import { RangeSet } from '../src/collector/peers/ranges.js';
import { type AcceptEvent, OwnerKind } from '../src/gen/doorwatch/v1/event.js';
import { ALL_KEYS, compileAllowList } from '../src/kube/allow-list.js';

const NODES = 5000;
const PODS_PER_NODE = 30;
const SERVICES = 10_000;
const DEPLOYMENTS = 15_000;
const LOOKUPS = 2_000_000;
const CHURN = 50_000;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('bench/peer-index: run with --expose-gc (npm run bench -- --peer-index does)\n');
  process.exit(2);
}
function heap(): number {
  for (let i = 0; i < 3; i++) gc!();
  return process.memoryUsage().heapUsed;
}

const nodeIp = (n: number) => `172.${16 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
const nodeExt = (n: number) => `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
// Node n's podCIDR: 10.<n / 256 + 64>.<n % 256>.0/24; pods .2 .. .31.
const podIp = (n: number, i: number) => `10.${64 + (n >> 8)}.${n & 255}.${i + 2}`;
const hex = (x: number, w: number) => x.toString(16).padStart(w, '0');

function deploymentOf(i: number) {
  const d = i % DEPLOYMENTS;
  return { name: `svc-${d}-api`, hash: hex((d * 2654435761) >>> 0, 8).slice(0, 9), team: `team-${d % 60}`, ns: `ns-${d % 400}` };
}

/** As an informer receives it: parsed JSON (flat strings, not the concatenations built here). */
const asJson = <T>(o: T): T => JSON.parse(JSON.stringify(o)) as T;

function makePod(n: number, i: number, gen = 0): V1Pod {
  const k = n * PODS_PER_NODE + i;
  const d = deploymentOf(k);
  return asJson<V1Pod>({
    metadata: {
      name: `${d.name}-${d.hash}-${hex(k * 31 + gen, 5)}`,
      namespace: d.ns,
      uid: `${hex(k, 8)}-${hex(gen, 4)}-4000-8000-${hex(k * 7919, 12)}`,
      labels: { app: d.name, team: d.team, 'pod-template-hash': d.hash, 'app.kubernetes.io/version': 'v1.4.2' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${d.name}-${d.hash}`, uid: 'x', controller: true }],
    },
    spec: { nodeName: `node-${n}`, containers: [] },
    status: { phase: 'Running', podIP: podIp(n, i), podIPs: [{ ip: podIp(n, i) }] },
  });
}

function makeNode(n: number): V1Node {
  return asJson<V1Node>({
    metadata: {
      name: `node-${n}`,
      uid: `${hex(n, 8)}-0000-4000-8000-${hex(n, 12)}`,
      labels: {
        'kubernetes.io/hostname': `node-${n}`,
        'topology.kubernetes.io/zone': `zone-${n % 3}`,
        'node.kubernetes.io/instance-type': 'm5.xlarge',
      },
    },
    spec: { podCIDR: `10.${64 + (n >> 8)}.${n & 255}.0/24`, podCIDRs: [`10.${64 + (n >> 8)}.${n & 255}.0/24`] },
    status: {
      addresses: [
        { type: 'InternalIP', address: nodeIp(n) },
        { type: 'ExternalIP', address: nodeExt(n) },
        { type: 'Hostname', address: `node-${n}` },
      ],
    },
  });
}

function makeService(s: number): V1Service {
  const d = deploymentOf(s);
  return asJson<V1Service>({
    metadata: {
      name: d.name,
      namespace: d.ns,
      uid: `${hex(s, 8)}-1111-4000-8000-${hex(s, 12)}`,
      labels: { app: d.name, team: d.team },
    },
    spec: { clusterIP: `10.96.${s >> 8}.${s & 255}`, clusterIPs: [`10.96.${s >> 8}.${s & 255}`] },
  });
}

// ------------------------------------------------------------------ build

let now = Date.now();
const clock = () => now;
const before = heap();
const index = new PeerIndex({ now: clock });
const factory = new OwnerFactory(compileAllowList(undefined, ALL_KEYS));
const ranges = new RangeSet();
const t0 = performance.now();
for (let n = 0; n < NODES; n++) {
  const o = factory.node(makeNode(n));
  index.set(o.kind, o.key, o.attr, o.addresses);
  for (const c of o.podCidrs) ranges.add(c);
  for (let i = 0; i < PODS_PER_NODE; i++) {
    const p = factory.pod(makePod(n, i));
    index.set(p.kind, p.key, p.attr, p.addresses);
  }
}
for (let s = 0; s < SERVICES; s++) {
  const o = factory.service(makeService(s));
  index.set(o.kind, o.key, o.attr, o.addresses);
}
index.loaded();
const buildMs = performance.now() - t0;
const after = heap();
const stats = index.stats();
const bytesPerAddress = (after - before) / stats.addresses;

// ------------------------------------------------------------------ lookups

const SAMPLE = 65_536;
const sample: string[] = [];
let x = 12345;
const rnd = () => {
  x = (Math.imul(x, 1103515245) + 12345) >>> 0;
  return x;
};
for (let i = 0; i < SAMPLE; i++) {
  const r = rnd() % 10;
  const n = rnd() % NODES;
  // Mostly pods, some nodes and Services, as peers are.
  sample.push(
    r < 8 ? podIp(n, rnd() % PODS_PER_NODE) : r < 9 ? nodeIp(n) : `10.96.${(rnd() % SERVICES) >> 8}.${(rnd() % SERVICES) & 255}`,
  );
}
// The strings events carry come out of the wire decoder as flat one-byte strings: make these flat too.
for (let i = 0; i < SAMPLE; i++) sample[i] = Buffer.from(sample[i]!, 'latin1').toString('latin1');

/**
 * ns per lookup over `span` of the sample: 65 536 random addresses of the whole cluster (every lookup a
 * cache miss: the worst case), or 1 024 (a collector's working set: the peers busy right now).
 */
function timeLookups(fn: (ip: string) => unknown, span: number): number {
  let hits = 0;
  for (let i = 0; i < 200_000; i++) if (fn(sample[i & (span - 1)]!)) hits++; // warm-up
  const t = process.hrtime.bigint();
  for (let i = 0; i < LOOKUPS; i++) if (fn(sample[i & (span - 1)]!)) hits++;
  const ns = Number(process.hrtime.bigint() - t) / LOOKUPS;
  if (hits < LOOKUPS) throw new Error(`lookups missed: ${LOOKUPS + 200_000 - hits}`);
  return ns;
}
const at = now;
const attributor = new PeerAttributor({ index, synced: () => true, ranges, historyMs: 300_000 });
// Reading the answer (as a format writer will) is part of the cost: the object is touched.
const lookup = (ip: string) => (index.lookup(ip, at, Side.Peer) as { name: string } | undefined)?.name;
const resolve = (ip: string) => attributor.resolve(ip, at, Side.Peer).name;
const lookupNs = timeLookups(lookup, SAMPLE);
const resolveNs = timeLookups(resolve, SAMPLE);
const lookupHotNs = timeLookups(lookup, 1024);
const resolveHotNs = timeLookups(resolve, 1024);

// What publish.ts adds per event: attach() = the peer's and the local address's answer, set on the event.
const events = Array.from({ length: 1024 }, (_, i) => ({
  socket: { peer: { ip: sample[i]!, port: 40000 }, local: { ip: sample[(i * 7) & 1023]!, port: 8080 } },
  timeUnixNano: BigInt(at) * 1_000_000n,
  peerAttribution: undefined,
  localAttribution: undefined,
})) as unknown as AcceptEvent[];
for (let i = 0; i < 200_000; i++) attributor.attach(events[i & 1023]!);
const ta = process.hrtime.bigint();
for (let i = 0; i < LOOKUPS; i++) attributor.attach(events[i & 1023]!);
const attachNs = Number(process.hrtime.bigint() - ta) / LOOKUPS;
if (!events.every((e) => e.peerAttribution?.name && e.localAttribution?.name)) throw new Error('attach left a blank');

// ------------------------------------------------------------------ updates (IP reuse churn)

const churn: { del: string; add: V1Pod }[] = [];
for (let j = 0; j < CHURN; j++) {
  const n = j % NODES;
  const i = Math.floor(j / NODES) % PODS_PER_NODE;
  const k = n * PODS_PER_NODE + i;
  churn.push({ del: `${hex(k, 8)}-${hex(0, 4)}-4000-8000-${hex(k * 7919, 12)}`, add: makePod(n, i, 1) });
}
const tu = process.hrtime.bigint();
for (const c of churn) {
  now += 1;
  index.delete(OwnerKind.OWNER_KIND_POD, c.del);
  const p = factory.pod(c.add);
  index.set(p.kind, p.key, p.attr, p.addresses);
}
const updateUs = Number(process.hrtime.bigint() - tu) / 1000 / (2 * CHURN);
const s2 = index.stats();
if (s2.ended !== CHURN || s2.pods !== NODES * PODS_PER_NODE) throw new Error(`churn did not land: ${JSON.stringify(s2)}`);

// ------------------------------------------------------------------ report

const row = (what: string, got: string, target: string, met: boolean) =>
  `| ${what.padEnd(34)} | ${got.padStart(12)} | ${target.padStart(10)} | ${met ? 'met' : 'NOT met'} |`;
const lines = [
  `peer index: ${NODES} nodes (2 addresses each), ${NODES * PODS_PER_NODE} pods, ${SERVICES} Services = ${stats.addresses} addresses; built in ${Math.round(buildMs)} ms`,
  `heap ${(before / 2 ** 20).toFixed(1)} -> ${(after / 2 ** 20).toFixed(1)} MiB; node ${process.version}; load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} on ${availableParallelism()} CPUs`,
  '',
  '| metric                             |     measured |     target | |',
  '|---|---:|---:|---|',
  row('bytes per address (heap delta)', bytesPerAddress.toFixed(0), '<= 500', bytesPerAddress <= 500),
  row('lookup, 64k random addresses, ns', lookupNs.toFixed(0), '<= 200', lookupNs <= 200),
  row('  + status (attributor), ns', resolveNs.toFixed(0), '<= 200', resolveNs <= 200),
  row('lookup, 1k busy addresses, ns', lookupHotNs.toFixed(0), '<= 200', lookupHotNs <= 200),
  row('  + status (attributor), ns', resolveHotNs.toFixed(0), '<= 200', resolveHotNs <= 200),
  row('update (informer event), us', updateUs.toFixed(2), '<= 5', updateUs <= 5),
  `| ${'attach: peer + local per event, ns'.padEnd(34)} | ${attachNs.toFixed(0).padStart(12)} | ${'-'.padStart(10)} | added to the collector's cost per event |`,
  '',
  `after ${CHURN} pod replacements on reused addresses: ${s2.ended} ended holdings kept for late events, ${s2.current} current`,
];
process.stdout.write(`${lines.join('\n')}\n`);
