import { decodeRecord, RECORD_SIZE, reusableRecord, Source } from '../src/capture/record.js';
import { type EventContext, toAcceptEvent } from '../src/capture/to-event.js';
import { eventToJson, eventToJsonLine, JsonWriter, writeEventJson } from '../src/formats/native-json.js';
import { buildRecord, RECORD_BASE } from '../test/helpers/record-builder.js';

/**
 * The agent's per-event userspace stages on one realistic record (an IPv4
 * loopback accept4 with a peer address), warm, no kernel: ns per event of
 * each stage, and of the whole path. `node build/bench-js/bench/micro.js` prints one JSON
 * line; bench/run.ts --breakdown runs it next to the in-situ modes.
 */

const ip4 = (a: number, b: number, c: number, d: number) => new Uint8Array([a, b, c, d, ...new Array(12).fill(0)]);
const userAddr = new Uint8Array(28);
new DataView(userAddr.buffer).setUint16(0, 2, true); // AF_INET
new DataView(userAddr.buffer).setUint16(2, 0xc3d4, false); // port 50132
userAddr.set([127, 0, 0, 1], 4);

const view = buildRecord({
  flags: 0,
  ktimeNs: 123_456_789_000n,
  enterKtimeNs: 123_456_780_000n,
  cgroupId: 4242n,
  pid: 31337,
  tid: 31338,
  ppid: 1,
  mntNs: 4026531841,
  pidNs: 4026531836,
  netNs: 4026531840,
  utsNs: 4026531838,
  ret: 5,
  sockfd: 3,
  acceptFlags: 0o2000000,
  addrPtr: 0x7ffd0000n,
  addrlenPtr: 0x7ffd0020n,
  backlog: 1,
  maxBacklog: 4096,
  userAddrlen: 16,
  userAddrlenIn: 16,
  family: 2,
  sockType: 1,
  protocol: 6,
  lport: 8080,
  rport: 50132,
  source: Source.ACCEPT4,
  laddr: ip4(127, 0, 0, 1),
  raddr: ip4(127, 0, 0, 1),
  userAddr,
  comm: 'storm',
});
const len = RECORD_SIZE;
const ctx: EventContext = {
  nodeName: 'bench-node',
  idPrefix: 'boot-id/abcdef012345',
  toUnixNano: (k) => k + 1_700_000_000_000_000_000n,
};

let sink = 0;
const raw = decodeRecord(view, RECORD_BASE, len);
// As the capture decodes: every record into one reused record.
const record = reusableRecord();
const ev = toAcceptEvent(raw, 1n, ctx);
const obj = eventToJson(ev);
const w = new JsonWriter(1 << 20);
/** Appends a line to w as trace does; a reset once it holds ~512 KiB (trace writes it out there). */
const line = (e: typeof ev) => {
  if (w.pos > 1 << 19) w.reset();
  writeEventJson(w, e);
  w.byte(0x0a);
};

const stages: Record<string, (i: number) => void> = {
  decodeRecord: () => {
    sink += decodeRecord(view, RECORD_BASE, len, record).pid;
  },
  toAcceptEvent: (i) => {
    sink += toAcceptEvent(raw, BigInt(i), ctx).ret;
  },
  'eventToJson (convert)': () => {
    sink += Object.keys(eventToJson(ev)).length;
  },
  'JSON.stringify': () => {
    sink += JSON.stringify(obj).length;
  },
  eventToJsonLine: () => {
    sink += eventToJsonLine(ev).length;
  },
  'writeEventJson (bytes)': () => {
    line(ev);
    sink += w.pos;
  },
  'whole path': (i) => {
    line(toAcceptEvent(decodeRecord(view, RECORD_BASE, len, record), BigInt(i), ctx));
    sink += w.pos;
  },
};

function nsPerOp(fn: (i: number) => void, n: number): number {
  for (let i = 0; i < n / 4; i++) fn(i); // warm up: let the JIT optimise it
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  return Number(process.hrtime.bigint() - t0) / n;
}

const n = Number(process.argv[2] ?? 200_000);
const out: Record<string, number> = {};
for (const [name, fn] of Object.entries(stages)) out[name] = Math.round(nsPerOp(fn, n));
process.stdout.write(`${JSON.stringify({ nsPerEvent: out, jsonBytes: eventToJsonLine(ev).length, sink: sink > 0 })}\n`);
