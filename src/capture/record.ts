/**
 * The C record (bpf/doorwatch.h, struct dw_accept_event) as TypeScript: its
 * layout table, its constants, and the one decoder from bytes to RawAccept.
 * test/unit/layout.test.ts checks every offset here against the BTF of the
 * built object and every constant against the header, so drift fails the
 * build instead of corrupting events.
 */

export const RECORD_VERSION = 3;
export const OP_ACCEPT = 1;
/** Listener records (bpf/lib/listen.h): the same struct, fields as doorwatch.h says. */
export const OP_LISTEN = 2;
export const OP_LISTEN_CLOSE = 3;
const knownOp = (op: number): boolean => op === OP_ACCEPT || op === OP_LISTEN || op === OP_LISTEN_CLOSE;

export const Source = { ACCEPT: 1, ACCEPT4: 2, IO_URING: 3, LISTEN: 4, LISTEN_CLOSE: 5, LISTEN_SCAN: 6 } as const;

/** hdr.flags bits, by the names users see in AcceptEvent.flags. */
export const RecordFlags = {
  NO_ENTER: 1 << 0,
  SOCK_UNRESOLVED: 1 << 1,
  LISTENER_UNRESOLVED: 1 << 2,
  USER_ADDR_NULL: 1 << 3,
  USER_ADDR_FAULT: 1 << 4,
  DIRECT_DESCRIPTOR: 1 << 5,
  CGROUP_V1_UNKNOWN: 1 << 6,
  USER_ADDR_TRUNCATED: 1 << 7,
  USER_ADDRLEN_IN_UNKNOWN: 1 << 8,
} as const;

// The probes' counters and settings belong to the loader; re-exported so the
// layout test checks every constant of doorwatch.h from one place.
export { ConfigFlags, KERNEL_COUNTER_SLOTS, KernelCounter } from '../bpf/abi.js';

export const COMM_LEN = 16;
export const UNIX_PATH_LEN = 108;
export const USER_ADDR_LEN = 28;

/** Byte offset of every member of struct dw_accept_event (nested: "hdr.op"). */
export const LAYOUT = {
  'hdr.op': 0,
  'hdr.version': 2,
  'hdr.flags': 4,
  'hdr.ktime_ns': 8,
  cgroup_id: 16,
  cgroup_v1_id: 24,
  enter_ktime_ns: 32,
  pid: 40,
  tid: 44,
  ppid: 48,
  uid: 52,
  gid: 56,
  mnt_ns: 60,
  pid_ns: 64,
  net_ns: 68,
  uts_ns: 72,
  ret: 76,
  sockfd: 80,
  accept_flags: 84,
  addr_ptr: 88,
  addrlen_ptr: 96,
  backlog: 104,
  max_backlog: 108,
  user_addrlen: 112,
  family: 116,
  sock_type: 118,
  protocol: 120,
  lport: 122,
  rport: 124,
  source: 126,
  laddr: 128,
  raddr: 144,
  user_addr: 160,
  comm: 188,
  unix_path_len: 204,
  policy_slot: 206,
  unix_path: 208,
  peer_pid: 316,
  user_addrlen_in: 320,
} as const;
export const RECORD_SIZE = 328;

/** The record, field for field, before any interpretation. */
export interface RawAccept {
  op: number;
  version: number;
  flags: number;
  ktimeNs: bigint;
  cgroupId: bigint;
  cgroupV1Id: bigint;
  enterKtimeNs: bigint;
  pid: number;
  tid: number;
  ppid: number;
  uid: number;
  gid: number;
  mntNs: number;
  pidNs: number;
  netNs: number;
  utsNs: number;
  ret: number;
  sockfd: number;
  acceptFlags: number;
  addrPtr: bigint;
  addrlenPtr: bigint;
  backlog: number;
  maxBacklog: number;
  /** *addrlen at exit: the address's full length. */
  userAddrlen: number;
  /** *addrlen at enter: the caller's buffer size (0 with USER_ADDRLEN_IN_UNKNOWN). */
  userAddrlenIn: number;
  /** Success: the accepted socket's; failure: the listening socket's (when resolved). */
  family: number;
  sockType: number;
  protocol: number;
  lport: number;
  rport: number;
  source: number;
  /** The record's addresses: decodeRecord's out's own arrays, rewritten by the next decode into the same out. */
  laddr: Uint8Array;
  raddr: Uint8Array;
  userAddr: Uint8Array;
  comm: string;
  /** A view of the ring record (unix sockets only): valid only until the drain callback returns (see bytes()). */
  unixPath: Uint8Array;
  peerPid: number;
  /** Audit policy slot that admitted the record in the kernel; 0 = none or the default slot. */
  policySlot: number;
}

export class RecordError extends Error {}

/** NUL-terminated ASCII-ish bytes; comm is at most 15 characters. */
function cString(v: DataView, off: number, max: number): string {
  let s = '';
  for (let i = 0; i < max; i++) {
    const c = v.getUint8(off + i);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/*
 * Typed-array views over the buffer of the last DataView decoded from (the
 * ring's mapping): element loads are far simpler for the JIT than DataView
 * calls (TurboFan compiled the DataView decoder in ~60 ms, at the start of
 * every `trace`), and cheaper per record. Used for records at 8-byte aligned
 * offsets, as the ring's are; anything else takes the DataView decoder.
 */
let viewOf: DataView | undefined;
let U8: Uint8Array = new Uint8Array(0);
let U16: Uint16Array = new Uint16Array(0);
let U32: Uint32Array = new Uint32Array(0);
let I32: Int32Array = new Int32Array(0);
function viewsOf(v: DataView): void {
  const n = v.byteLength;
  U8 = new Uint8Array(v.buffer, v.byteOffset, n);
  U16 = new Uint16Array(v.buffer, v.byteOffset, n >>> 1);
  U32 = new Uint32Array(v.buffer, v.byteOffset, n >>> 2);
  I32 = new Int32Array(v.buffer, v.byteOffset, n >>> 2);
  viewOf = v;
}

/*
 * The last comm by its 16 bytes: a storm comes from one process, and building
 * the string anew (one concatenation per character) was per-event work for
 * per-process data.
 */
let commKey0 = -1;
let commKey1 = -1;
let commKey2 = -1;
let commKey3 = -1;
let commText = '';
/** comm at byte `off` of I32's buffer (4-aligned). */
function comm(v: DataView, off: number): string {
  const i = off >>> 2;
  const k0 = I32[i]!;
  const k1 = I32[i + 1]!;
  const k2 = I32[i + 2]!;
  const k3 = I32[i + 3]!;
  if (k0 !== commKey0 || k1 !== commKey1 || k2 !== commKey2 || k3 !== commKey3) {
    commText = cString(v, off, COMM_LEN);
    commKey0 = k0;
    commKey1 = k1;
    commKey2 = k2;
    commKey3 = k3;
  }
  return commText;
}

/*
 * 64-bit ids that repeat from record to record (cgroup ids, the caller's
 * buffer pointers): the last value's bigint is reused when the bytes are the
 * same, instead of a new heap number per field per record.
 */
class U64Memo {
  lo = -1;
  hi = -1;
  value = 0n;
  /** The u64 at byte `off` of I32's buffer (8-aligned). */
  read(v: DataView, off: number): bigint {
    const i = off >>> 2;
    const lo = I32[i]!;
    const hi = I32[i + 1]!;
    if (lo !== this.lo || hi !== this.hi) {
      this.value = v.getBigUint64(off, true);
      this.lo = lo;
      this.hi = hi;
    }
    return this.value;
  }
}
const cgroupIdMemo = new U64Memo();
const cgroupV1IdMemo = new U64Memo();
const addrPtrMemo = new U64Memo();
const addrlenPtrMemo = new U64Memo();

/*
 * The unix path (variable length, unix sockets only) as a view, not a copy: the ring memory stays valid
 * until the drain that called us returns, and toAcceptEvent turns it into a string inside that callback.
 * The fixed-size addresses are copied into the record's own arrays instead (reusableRecord).
 */
function bytes(v: DataView, off: number, len: number): Uint8Array {
  return len === 0 ? NO_BYTES : new Uint8Array(v.buffer, v.byteOffset + off, len);
}
/** An empty field (the unix path of every inet record): one shared view, nothing to read or write in it. */
const NO_BYTES = new Uint8Array(0);

/**
 * A RawAccept for decodeRecord to fill record after record: the capture's drain decodes every record into
 * one, since toAcceptEvent is done with it before the next. A new object (and three views) per record were
 * a third of all the agent allocated per event (~670 of ~2 100 bytes, V8's sampling heap profiler).
 */
export function reusableRecord(): RawAccept {
  return {
    op: 0,
    version: 0,
    flags: 0,
    ktimeNs: 0n,
    cgroupId: 0n,
    cgroupV1Id: 0n,
    enterKtimeNs: 0n,
    pid: 0,
    tid: 0,
    ppid: 0,
    uid: 0,
    gid: 0,
    mntNs: 0,
    pidNs: 0,
    netNs: 0,
    utsNs: 0,
    ret: 0,
    sockfd: 0,
    acceptFlags: 0,
    addrPtr: 0n,
    addrlenPtr: 0n,
    backlog: 0,
    maxBacklog: 0,
    userAddrlen: 0,
    userAddrlenIn: 0,
    family: 0,
    sockType: 0,
    protocol: 0,
    lport: 0,
    rport: 0,
    source: 0,
    laddr: new Uint8Array(16),
    raddr: new Uint8Array(16),
    userAddr: new Uint8Array(USER_ADDR_LEN),
    comm: '',
    unixPath: NO_BYTES,
    peerPid: 0,
    policySlot: 0,
  };
}

/** n bytes of the ring (U8) at `from` into `to`, which is n long: a loop, cheaper than a view per field. */
function copyBytes(to: Uint8Array, from: number): void {
  for (let i = 0; i < to.length; i++) to[i] = U8[from + i]!;
}

/**
 * Decode one record at `base` (length `len`) of `v` into `out` (default: a new one); returns it. Pure:
 * tested with byte fixtures, no kernel needed. Little-endian only (x86_64, arm64). The addresses are copied
 * into out's own arrays; unixPath (unix sockets only) is a view of the ring, valid while the drain lasts.
 */
export function decodeRecord(v: DataView, base: number, len: number, out: RawAccept = reusableRecord()): RawAccept {
  if (len < RECORD_SIZE) throw new RecordError(`record of ${len} bytes, expected ${RECORD_SIZE}`);
  if (base < 0 || base + RECORD_SIZE > v.byteLength) {
    throw new RecordError(`record at ${base} runs past its ${v.byteLength}-byte buffer`);
  }
  if (((v.byteOffset | base) & 7) !== 0) {
    // Never the ring (8-aligned): a copy at the start of its own ArrayBuffer reads as one.
    const copy = new Uint8Array(RECORD_SIZE);
    copy.set(new Uint8Array(v.buffer, v.byteOffset + base, RECORD_SIZE));
    return decodeRecord(new DataView(copy.buffer), 0, RECORD_SIZE, out);
  }
  if (v !== viewOf) viewsOf(v);
  const L = LAYOUT;
  const op = U16[base >>> 1]!;
  if (!knownOp(op)) throw new RecordError(`unknown record op ${op}`);
  const version = U8[base + L['hdr.version']]!;
  if (version !== RECORD_VERSION) throw new RecordError(`record version ${version}, this build reads ${RECORD_VERSION}`);
  const unixLen = Math.min(U16[(base + L.unix_path_len) >>> 1]!, UNIX_PATH_LEN);
  out.op = op;
  out.version = version;
  out.flags = U32[(base + L['hdr.flags']) >>> 2]!;
  out.ktimeNs = v.getBigUint64(base + L['hdr.ktime_ns'], true);
  out.cgroupId = cgroupIdMemo.read(v, base + L.cgroup_id);
  out.cgroupV1Id = cgroupV1IdMemo.read(v, base + L.cgroup_v1_id);
  out.enterKtimeNs = v.getBigUint64(base + L.enter_ktime_ns, true);
  out.pid = U32[(base + L.pid) >>> 2]!;
  out.tid = U32[(base + L.tid) >>> 2]!;
  out.ppid = U32[(base + L.ppid) >>> 2]!;
  out.uid = U32[(base + L.uid) >>> 2]!;
  out.gid = U32[(base + L.gid) >>> 2]!;
  out.mntNs = U32[(base + L.mnt_ns) >>> 2]!;
  out.pidNs = U32[(base + L.pid_ns) >>> 2]!;
  out.netNs = U32[(base + L.net_ns) >>> 2]!;
  out.utsNs = U32[(base + L.uts_ns) >>> 2]!;
  out.ret = I32[(base + L.ret) >>> 2]!;
  out.sockfd = I32[(base + L.sockfd) >>> 2]!;
  out.acceptFlags = U32[(base + L.accept_flags) >>> 2]!;
  out.addrPtr = addrPtrMemo.read(v, base + L.addr_ptr);
  out.addrlenPtr = addrlenPtrMemo.read(v, base + L.addrlen_ptr);
  out.backlog = U32[(base + L.backlog) >>> 2]!;
  out.maxBacklog = U32[(base + L.max_backlog) >>> 2]!;
  out.userAddrlen = U32[(base + L.user_addrlen) >>> 2]!;
  out.userAddrlenIn = U32[(base + L.user_addrlen_in) >>> 2]!;
  out.family = U16[(base + L.family) >>> 1]!;
  out.sockType = U16[(base + L.sock_type) >>> 1]!;
  out.protocol = U16[(base + L.protocol) >>> 1]!;
  out.lport = U16[(base + L.lport) >>> 1]!;
  out.rport = U16[(base + L.rport) >>> 1]!;
  out.source = U8[base + L.source]!;
  copyBytes(out.laddr, base + L.laddr);
  copyBytes(out.raddr, base + L.raddr);
  copyBytes(out.userAddr, base + L.user_addr);
  out.comm = comm(v, base + L.comm);
  out.unixPath = bytes(v, base + L.unix_path, unixLen);
  out.peerPid = U32[(base + L.peer_pid) >>> 2]!;
  out.policySlot = U16[(base + L.policy_slot) >>> 1]!;
  return out;
}
