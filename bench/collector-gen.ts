import assert from 'node:assert/strict';
import { once } from 'node:events';
import { closeSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { credentials, Client as GrpcClient, Metadata } from '@grpc/grpc-js';
import { decodePublishRequest } from '../src/collector/wire.js';
import { PublishRequest } from '../src/gen/doorwatch/v1/collector.js';
import { AcceptEvent } from '../src/gen/doorwatch/v1/event.js';
import { BATCH_CONTEXTS_HEADER } from '../src/protocol.js';
import { sampleEvent } from '../test/helpers/sample-events.js';

/**
 * The agent side of `bench/collector.ts`: ONE Publish stream over mutual TLS,
 * like an agent's, but as cheap as possible so the collector gets the CPU:
 * each pod's constant part of an event (everything but event_id, seq and the
 * two times) is encoded once, and a batch is spliced from those bytes (a few
 * hundred ns per event). The bytes equal the generated encoder's (checked at
 * start). It reads the collector's CPU and memory from /proc, and in rate mode
 * tails the jsonl file to time each event from its send to its line.
 *
 * argv[2]: JSON options (see Opts). Prints one JSON line with the result.
 */
interface Opts {
  port: number;
  ca: string;
  cert: string;
  key: string;
  /** The collector's pid: CPU (utime + stime, all threads) and RSS from /proc. */
  pid: number;
  /** Measured events (after the warm-up). */
  events: number;
  warmup: number;
  /** Offered events/s; 0 = as fast as the acks allow (saturation). */
  rate: number;
  batch: number;
  /** Batches in flight before waiting for an ack (the agent's window). */
  window: number;
  /** Distinct pods the events come from. */
  pods: number;
  /** false: whole events even to a collector that announces batch contexts (default: as an agent, contexts when announced). */
  contexts?: boolean;
  /** In rate mode: the jsonl file to tail for latency (line order = seq order: one stream). */
  tail?: string;
  /** Wall-clock bound, seconds. */
  timeoutS: number;
}
const o = JSON.parse(process.argv[2]!) as Opts;

const bootId = `bench-boot-${process.pid}`;
const instanceId = `bench-inst-${Date.now()}`;
const idPrefix = Buffer.from(`${bootId}/${instanceId}/`);

// ------------------------------------------------------------------ encoding

function varintLen(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}
function putVarint(b: Buffer, pos: number, v: number): number {
  while (v >= 128) {
    b[pos++] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  b[pos++] = v;
  return pos;
}
function putVarint64(b: Buffer, pos: number, v: bigint): number {
  while (v >= 128n) {
    b[pos++] = Number(v & 127n) | 128;
    v >>= 7n;
  }
  b[pos++] = Number(v);
  return pos;
}

/** Per pod: the event without fields 1-4 (proto3 omits the zero values, so this is the tail of the encoding). */
const rests: Buffer[] = [];
/** The same without its per-pod fields, and those fields alone: an agent's batch context (EventBatch.contexts). */
const bareRests: Buffer[] = [];
const contexts: Buffer[] = [];
for (let p = 0; p < o.pods; p++) {
  const ev = sampleEvent({
    nodeName: 'bench-node',
    process: { pid: 800 + p, tid: 801 + p },
    pod: { name: `web-7d9f-${p}`, uid: `uid-${p}`, nodeName: 'bench-node', ip: `10.0.1.${p}` },
    container: { id: p.toString(16).padStart(64, 'c') },
  });
  const own = { ...ev, eventId: '', seq: 0n, timeUnixNano: 0n, ktimeNs: 0n };
  rests.push(Buffer.from(AcceptEvent.encode(own).finish()));
  const none = { namespaces: undefined, cgroup: undefined, container: undefined, pod: undefined, enrichment: undefined };
  bareRests.push(Buffer.from(AcceptEvent.encode({ ...own, ...none }).finish()));
  const { namespaces, cgroup, container, pod, enrichment } = ev;
  contexts.push(
    Buffer.from(AcceptEvent.encode(AcceptEvent.fromPartial({ namespaces, cgroup, container, pod, enrichment })).finish()),
  );
}
/** The collector announced batch contexts (its response header): batches are sent as the agent then sends them. */
let withContexts = false;

function eventHead(seq: bigint, t: bigint): Buffer {
  const seqText = Buffer.from(seq.toString());
  const b = Buffer.allocUnsafe(2 + idPrefix.length + seqText.length + 1 + 10 + 1 + 10 + 1 + 10);
  let p = 0;
  b[p++] = 0x0a;
  p = putVarint(b, p, idPrefix.length + seqText.length);
  p += idPrefix.copy(b, p);
  p += seqText.copy(b, p);
  b[p++] = 0x10;
  p = putVarint64(b, p, seq);
  b[p++] = 0x18;
  p = putVarint64(b, p, t);
  b[p++] = 0x20;
  p = putVarint64(b, p, t);
  return b.subarray(0, p);
}

/**
 * PublishRequest{batch: EventBatch{first_seq, events}} for seqs first..first+n-1, all stamped `t`; with
 * `contexts`, each pod's fields once (EventBatch.contexts before the events, event_contexts after them).
 */
function encodeBatch(first: bigint, n: number, t: bigint, withCtx = withContexts): Buffer {
  const parts: Buffer[] = [];
  const ctxParts: Buffer[] = [];
  let eventsLen = 0;
  const used = new Map<number, number>();
  const refs: number[] = [];
  for (let i = 0; i < n; i++) {
    const seq = first + BigInt(i);
    const head = eventHead(seq, t);
    const p = Number(seq % BigInt(rests.length));
    const rest = (withCtx ? bareRests : rests)[p]!;
    if (withCtx) {
      let k = used.get(p);
      if (k === undefined) {
        k = used.size + 1;
        used.set(p, k);
        const c = contexts[p]!;
        const tag = Buffer.allocUnsafe(1 + varintLen(c.length));
        tag[0] = 0x22;
        putVarint(tag, 1, c.length);
        ctxParts.push(tag, c);
        eventsLen += tag.length + c.length;
      }
      refs.push(k);
    }
    const len = head.length + rest.length;
    const tag = Buffer.allocUnsafe(1 + varintLen(len));
    tag[0] = 0x12;
    putVarint(tag, 1, len);
    parts.push(tag, head, rest);
    eventsLen += tag.length + len;
  }
  if (withCtx) {
    const packed = Buffer.allocUnsafe(refs.length * 5);
    let q = 0;
    for (const k of refs) q = putVarint(packed, q, k);
    const tag = Buffer.allocUnsafe(1 + varintLen(q));
    tag[0] = 0x2a;
    putVarint(tag, 1, q);
    parts.push(tag, packed.subarray(0, q));
    eventsLen += tag.length + q;
  }
  const fs = Buffer.allocUnsafe(11);
  fs[0] = 0x08;
  const fsLen = putVarint64(fs, 1, first);
  const batchLen = fsLen + eventsLen;
  const outer = Buffer.allocUnsafe(1 + varintLen(batchLen));
  outer[0] = 0x12;
  putVarint(outer, 1, batchLen);
  return Buffer.concat([outer, fs.subarray(0, fsLen), ...ctxParts, ...parts], outer.length + batchLen);
}

{
  // The splice must equal the generated encoder, or the benchmark measures another input.
  const t = 1_800_000_000_123_456_789n;
  const bytes = encodeBatch(41n, 3, t);
  const events = [41n, 42n, 43n].map((seq) => ({
    ...AcceptEvent.decode(rests[Number(seq % BigInt(rests.length))]!),
    eventId: `${bootId}/${instanceId}/${seq}`,
    seq,
    timeUnixNano: t,
    ktimeNs: t,
  }));
  const want = Buffer.from(
    PublishRequest.encode({ batch: { firstSeq: 41n, events, losses: undefined, contexts: [], eventContexts: [] } }).finish(),
  );
  if (!want.equals(bytes)) throw new Error('collector-gen: spliced batch differs from the generated encoder');
  // With contexts: the collector's decoder must read back the very same events.
  const got = decodePublishRequest(encodeBatch(41n, 3, t, true)).batch!.events;
  assert.deepStrictEqual(
    got,
    PublishRequest.decode(want).batch!.events,
    'collector-gen: a batch with contexts reads back otherwise',
  );
}

// ------------------------------------------------------------------ /proc

const ticks = 100; // CLK_TCK on Linux x86_64 and arm64
function cpuUs(path = `/proc/${o.pid}/stat`): number {
  const s = readFileSync(path, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / ticks;
}
/** CPU time the whole machine spent busy (not idle or iowait), µs, from /proc/stat. */
function machineBusyUs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return ((user + nice + system + irq + softirq + steal) * 1e6) / ticks;
}
function rssMiB(): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${o.pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0) / 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

// ------------------------------------------------------------------ the stream

const client = new GrpcClient(
  `127.0.0.1:${o.port}`,
  credentials.createSsl(readFileSync(o.ca), readFileSync(o.key), readFileSync(o.cert)),
  { 'grpc.ssl_target_name_override': 'localhost', 'grpc.max_send_message_length': 64 << 20 },
);
const call = client.makeBidiStreamRequest<Buffer, Buffer>(
  '/doorwatch.v1.CollectorService/Publish',
  (b) => b,
  (b) => b,
  new Metadata(),
);
call.on('metadata', (md: Metadata) => {
  withContexts = o.contexts !== false && md.get(BATCH_CONTEXTS_HEADER)[0] === '1';
});
let acked = 0n;
let ackWaiter: (() => void) | null = null;
call.on('data', (b: Buffer) => {
  // PublishResponse{acked_seq = 1}: 0x08 varint.
  let v = 0n;
  let shift = 0n;
  for (let i = 1; i < b.length; i++) {
    v |= BigInt(b[i]! & 127) << shift;
    shift += 7n;
    if (b[i]! < 128) break;
  }
  if (v > acked) acked = v;
  ackWaiter?.();
});
let failed: Error | null = null;
call.on('error', (e: Error) => {
  failed = e;
  ackWaiter?.();
});
const deadline = Date.now() + o.timeoutS * 1000;
function check(): void {
  if (failed) throw failed;
  if (Date.now() > deadline) throw new Error(`collector-gen: timed out after ${o.timeoutS}s (acked ${acked})`);
}
const ackedAtLeast = (seq: bigint) =>
  new Promise<void>((resolve) => {
    const poll = () => {
      if (acked >= seq || failed || Date.now() > deadline) {
        clearTimeout(timer);
        ackWaiter = null;
        resolve();
      }
    };
    const timer = setTimeout(poll, 100);
    ackWaiter = poll;
    poll();
  });
const write = (b: Buffer) => new Promise<void>((resolve) => (call.write(b) ? resolve() : call.once('drain', resolve)));

await write(
  Buffer.from(
    PublishRequest.encode({ hello: { agent: { nodeName: 'bench-node', bootId, instanceId, version: 'bench' } } }).finish(),
  ),
);
// The collector's response header says whether it applies batch contexts (a collector from before them sends
// its headers with the first ack only: then no header, and whole events).
await Promise.race([once(call, 'metadata'), sleep(1000)]);
process.stderr.write(`collector-gen: batch contexts ${withContexts ? 'on' : 'off'}\n`);
const nowNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;

let next = 1n;
/** Sends n events in batches, at most `window` batches unacked; at `rate` (events/s) when > 0. */
async function send(n: number, rate: number, sent?: (first: bigint, count: number, atMs: number) => void): Promise<void> {
  const t0 = performance.now();
  for (let done = 0; done < n; ) {
    check();
    const count = Math.min(o.batch, n - done);
    const inFlight = next - 1n - acked;
    if (inFlight >= BigInt(o.batch * o.window)) {
      await ackedAtLeast(next - 1n - BigInt(o.batch * (o.window - 1)));
      continue;
    }
    if (rate > 0) {
      const due = t0 + (done / rate) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const at = performance.now();
    const bytes = encodeBatch(next, count, nowNs());
    sent?.(next, count, at);
    next += BigInt(count);
    done += count;
    await write(bytes);
  }
  await ackedAtLeast(next - 1n);
  check();
}

// Warm-up (JIT, pools, the first file writes), fully acked before measuring.
if (o.warmup > 0) await send(o.warmup, o.rate);

// Latency: tail the jsonl file from its current end; the n-th new line is the n-th event sent from here.
const sendMs: number[] = [];
const lat: number[] = [];
let tailTimer: NodeJS.Timeout | undefined;
let baseSeq = next;
if (o.tail) {
  const path = o.tail;
  let fd = openSync(path, 'r');
  let pos = fstatSync(fd).size;
  let line = 0;
  const buf = Buffer.allocUnsafe(1 << 20);
  const poll = () => {
    const now = performance.now();
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      pos += n;
      for (let i = buf.indexOf(10); i !== -1 && i < n; i = buf.indexOf(10, i + 1)) {
        const s = sendMs[line++];
        if (s !== undefined) lat.push(now - s);
      }
    }
    // Rotated (jsonl maxBytes): the live name is a new file, read it from its start.
    try {
      if (statSync(path).ino !== fstatSync(fd).ino) {
        closeSync(fd);
        fd = openSync(path, 'r');
        pos = 0;
      }
    } catch {}
  };
  tailTimer = setInterval(poll, 1);
}
baseSeq = next;
const cpu0 = cpuUs();
const busy0 = machineBusyUs();
const self0 = process.cpuUsage();
const mainPath = `/proc/${o.pid}/task/${o.pid}/stat`;
const main0 = cpuUs(mainPath);
let rssMax = 0;
const rssTimer = setInterval(() => {
  rssMax = Math.max(rssMax, rssMiB().rss);
}, 100);
const t0 = performance.now();
await send(o.events, o.rate, (first, count, at) => {
  for (let i = 0; i < count; i++) sendMs[Number(first - baseSeq) + i] = at;
});
const seconds = (performance.now() - t0) / 1000;
const cpu = cpuUs() - cpu0;
const mainCpu = cpuUs(mainPath) - main0;
const selfCpu = process.cpuUsage(self0);
// What the rest of the machine did meanwhile (other work on this shared host), in % of one CPU.
const othersPct = Math.max(0, (machineBusyUs() - busy0 - cpu - selfCpu.user - selfCpu.system) / (seconds * 1e6)) * 100;
clearInterval(rssTimer);
const mem = rssMiB();
if (tailTimer) {
  const until = Date.now() + 5000;
  while (lat.length < o.events && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  clearInterval(tailTimer);
}
lat.sort((a, b) => a - b);
const pct = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]! : null);
call.end();
client.close();
process.stdout.write(
  `${JSON.stringify({
    events: o.events,
    seconds,
    eventsPerS: o.events / seconds,
    cpuUsPerEvent: cpu / o.events,
    /** The main (JS) thread's share; the rest is GC helpers, libuv's pool, ... */
    mainUsPerEvent: mainCpu / o.events,
    /** The generator's own CPU per event (it shares the machine with the collector). */
    genUsPerEvent: (selfCpu.user + selfCpu.system) / o.events,
    othersPct,
    rssMiB: Math.max(rssMax, mem.rss),
    hwmMiB: mem.hwm,
    p50Ms: pct(50),
    p99Ms: pct(99),
    maxMs: lat.length ? lat.at(-1) : null,
    latencySamples: lat.length,
  })}\n`,
  () => process.exit(0),
);
