import net from 'node:net';
import tls from 'node:tls';
import { z } from 'zod';
import { recordId, recordKind, recordSummary, recordTimeNs, summaryReasonName, writeLine } from '../formats/format.js';
import { JsonWriter } from '../formats/native-json.js';
import { billions, isoSeconds, splitBillion, U64_MAX } from '../formats/u64.js';
import type { Logger } from '../log/logger.js';
import { Backoff } from '../retry/backoff.js';
import { durationMs, entryKeys, parseConfig, readTlsFile, sizeBytes, tlsSchema } from './config.js';
import type { FormatName, Sink, SinkDeps, SinkFactory, SinkRecord } from './sink.js';

/**
 * `type: syslog` — RFC 5424 messages over TLS (RFC 5425) or plain TCP, with
 * RFC 6587 octet-counting framing, on ONE persistent connection. The frame is
 * built by a pure function (buildSyslogFrame); the sink only moves bytes.
 * docs/sinks/syslog.md is the user-facing description.
 */

// ---------------------------------------------------------------------------
// Payload (pure)

/** RFC 5424 §6.2.1 facility codes. */
export const FACILITIES = {
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  ntp: 12,
  audit: 13,
  alert: 14,
  clock: 15,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
} as const;
export type Facility = keyof typeof FACILITIES;

/** RFC 5424 §6.2.1 severities used by Doorwatch. */
export const SEVERITY = { err: 3, warning: 4, info: 6 } as const;

/**
 * SD-ID of Doorwatch's structured-data element. 32473 is the Private
 * Enterprise Number reserved for documentation (RFC 5612); it is stable, so
 * receiver-side parsing rules can rely on it.
 */
export const SD_ID = 'doorwatch@32473';

export interface SyslogFrameOptions {
  facility: Facility;
  format: FormatName;
  appName: string;
  /** Prefix MSG with a UTF-8 BOM (RFC 5424's MSG-UTF8). */
  bom: boolean;
}

/**
 * info for a successful accept, warning for a failed one (a summary: when any
 * accept it folds failed), err for a loss record (a gap in the audit trail),
 * warning for a finding (an alert: src/findings).
 */
export function severityOf(rec: SinkRecord): number {
  if (rec.kind === 'loss') return SEVERITY.err;
  if (rec.event.findingInfo) return SEVERITY.warning;
  const summary = recordSummary(rec);
  if (summary) return summary.failedCount > 0n ? SEVERITY.warning : SEVERITY.info;
  return rec.event.success ? SEVERITY.info : SEVERITY.warning;
}

/** MSGID: what the record is (RFC 5424 §6.2.7), so receivers can route on it without parsing MSG. */
export function msgIdOf(rec: SinkRecord): string {
  const kind = recordKind(rec);
  let id = msgIds.get(kind);
  if (id === undefined) {
    id = kind.toUpperCase();
    msgIds.set(kind, id);
  }
  return id;
}
const msgIds = new Map<string, string>();

/** PRI = facility * 8 + severity (RFC 5424 §6.2.1). */
export function syslogPri(facility: Facility, severity: number): number {
  return FACILITIES[facility] * 8 + severity;
}

/** RFC 3339 in UTC with microseconds ("2023-11-14T22:13:20.123456Z"); NILVALUE for 0. */
export function syslogTimestamp(ns: bigint): string {
  return tsText.textOf(writeTimestamp, ns);
}
const tsText = new JsonWriter(64);

/** PARAM-VALUE escaping (RFC 5424 §6.3.3): `"`, `\` and `]` get a backslash. */
const SD_SPECIAL = /["\\\]]/;
export function escapeSdParam(value: string): string {
  return SD_SPECIAL.test(value) ? value.replace(/["\\\]]/g, '\\$&') : value;
}

/** A header field: 1*max PRINTUSASCII, or NILVALUE when empty; the last one per length remembered (node names repeat). */
const lastFields = new Map<number, { value: string; clean: string }>();
function headerField(value: string, max: number): string {
  const last = lastFields.get(max);
  if (last?.value === value) return last.clean;
  const clean = headerFieldOf(value, max);
  lastFields.set(max, { value, clean });
  return clean;
}
function headerFieldOf(value: string, max: number): string {
  const clean = value.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return clean === '' ? '-' : clean;
}

function endpoint(ep: { ip: string; port: number } | undefined): string | undefined {
  if (!ep?.ip) return undefined;
  return ep.ip.includes(':') ? `[${ep.ip}]:${ep.port}` : `${ep.ip}:${ep.port}`;
}

function sdParams(rec: SinkRecord): [string, string | undefined][] {
  if (rec.kind === 'loss') {
    const l = rec.loss;
    return [
      ['id', recordId(rec)],
      ['from', l.fromSeq.toString()],
      ['to', l.toSeq.toString()],
      ['reason', l.reason || undefined],
    ];
  }
  const e = rec.event;
  const summary = recordSummary(rec);
  if (summary) {
    // `src` names one connection: a summary says its key's peer address instead (none when peers were folded).
    return [
      ['id', recordId(rec)],
      ['ns', e.pod?.namespace || undefined],
      ['pod', e.pod?.name || undefined],
      ['peer', summary.peerIp || undefined],
      ['dst', endpoint(e.socket?.local)],
      ['count', summary.count.toString()],
      ['failed', summary.failedCount.toString()],
      ['reason', summaryReasonName(summary.reason)],
    ];
  }
  return [
    ['id', recordId(rec)],
    ['ns', e.pod?.namespace || undefined],
    ['pod', e.pod?.name || undefined],
    ['src', endpoint(e.socket?.peer)],
    ['dst', endpoint(e.socket?.local)],
  ];
}

/**
 * The RFC 5424 header and structured data, up to the space before MSG, as text: for loss records and
 * summaries, and the reference writeEventHeader is held equal to (test/unit/sink-syslog.test.ts).
 */
export function syslogHeader(rec: SinkRecord, opts: SyslogFrameOptions): string {
  const isEvent = rec.kind === 'event';
  const host = isEvent ? rec.event.nodeName : (rec.loss.agent?.nodeName ?? '');
  const pid = isEvent && rec.event.process?.pid ? String(rec.event.process.pid) : '-';
  let sd = '';
  for (const [k, v] of sdParams(rec)) if (v !== undefined) sd += ` ${k}="${escapeSdParam(v)}"`;
  const pri = syslogPri(opts.facility, severityOf(rec));
  return `<${pri}>1 ${syslogTimestamp(recordTimeNs(rec))} ${headerField(host, 255)} ${headerField(opts.appName, 48)} ${pid} ${msgIdOf(rec)} [${SD_ID}${sd}] `;
}

const BOM = Buffer.from('\uFEFF', 'utf8');

/**
 * syslogHeader() of an accept (not a summary, not a loss record) written as bytes: the same bytes, without
 * the parameter list, the endpoint strings and the header text per record it made (~1.7 KiB of the syslog
 * sink's ~6.6 KiB allocated per event, by the heap profiler).
 */
function writeEventHeader(w: JsonWriter, rec: SinkRecord & { kind: 'event' }, opts: SyslogFrameOptions): void {
  const e = rec.event;
  w.room(64);
  w.byte(0x3c); // <
  w.num(syslogPri(opts.facility, severityOf(rec)));
  w.byte(0x3e); // >
  w.byte(0x31); // version 1
  w.byte(0x20);
  writeTimestamp(w, e.timeUnixNano);
  w.byte(0x20);
  w.text(headerField(e.nodeName, 255));
  w.byte(0x20);
  w.text(headerField(opts.appName, 48));
  w.byte(0x20);
  if (e.process?.pid) w.num(e.process.pid);
  else w.byte(0x2d);
  w.byte(0x20);
  w.ascii(msgIdOf(rec));
  w.ascii(SD_OPEN);
  sdParam(w, ' id="', e.eventId);
  if (e.pod?.namespace) sdParam(w, ' ns="', e.pod.namespace);
  if (e.pod?.name) sdParam(w, ' pod="', e.pod.name);
  sdEndpoint(w, ' src="', e.socket?.peer);
  sdEndpoint(w, ' dst="', e.socket?.local);
  w.room(4);
  w.byte(0x5d); // ]
  w.byte(0x20);
}
const SD_OPEN = ` [${SD_ID}`;

/** ` name="value"` (name and the opening quote in `open`), the value escaped as escapeSdParam does. */
function sdParam(w: JsonWriter, open: string, value: string): void {
  w.ascii(open);
  w.text(SD_SPECIAL.test(value) ? escapeSdParam(value) : value);
  w.room(2);
  w.byte(0x22);
}

/** endpoint() as a parameter: `ip:port`, or `[ip\]:port` for IPv6 (escapeSdParam escapes the `]`). */
function sdEndpoint(w: JsonWriter, open: string, ep: { ip: string; port: number } | undefined): void {
  if (!ep?.ip) return;
  const v6 = ep.ip.includes(':');
  if (SD_SPECIAL.test(ep.ip)) {
    sdParam(w, open, endpoint(ep)!);
    return;
  }
  w.ascii(open);
  if (v6) w.byte(0x5b);
  w.text(ep.ip);
  w.room(16);
  if (v6) {
    w.byte(0x5c);
    w.byte(0x5d);
  }
  w.byte(0x3a);
  w.num(ep.port);
  w.byte(0x22);
}

/**
 * syslogTimestamp() appended to `w`: seconds and microseconds split without a BigInt per record, the
 * second's text remembered (consecutive records mostly share it).
 */
function writeTimestamp(w: JsonWriter, ns: bigint): void {
  if (ns <= 0n) {
    w.byte(0x2d);
    return;
  }
  if (ns > U64_MAX) {
    // Beyond any clock (a u64 of ns is the year 2554): BigInt arithmetic.
    const micros = ((ns / 1000n) % 1_000_000n).toString().padStart(6, '0');
    w.ascii(`${new Date(Number(ns / 1_000_000_000n) * 1000).toISOString().slice(0, 19)}.${micros}Z`);
    return;
  }
  splitBillion(ns);
  const r = billions.r;
  w.ascii(isoSeconds(billions.q));
  w.room(8);
  const b = w.buf;
  let p = w.pos;
  b[p++] = 0x2e; // .
  let micros = Math.floor(r / 1000);
  for (let i = 5; i >= 0; i--) {
    const q = (micros / 10) | 0;
    b[p + i] = 0x30 + micros - q * 10;
    micros = q;
  }
  p += 6;
  b[p++] = 0x5a; // Z
  w.pos = p;
}

/** The RFC 5424 message (header, BOM, the record in its format), without framing, appended to `w`. */
function writeSyslogMessage(w: JsonWriter, rec: SinkRecord, opts: SyslogFrameOptions): void {
  if (rec.kind === 'event' && !recordSummary(rec)) writeEventHeader(w, rec, opts);
  else w.text(syslogHeader(rec, opts));
  if (opts.bom) w.raw(BOM);
  writeLine(w, rec, opts.format);
}

/** The RFC 5424 message, without framing. */
export function buildSyslogMessage(rec: SinkRecord, opts: SyslogFrameOptions): string {
  return message.textOf((w) => writeSyslogMessage(w, rec, opts), undefined);
}

/** RFC 6587 octet counting: "<length in BYTES> <message>". */
export function buildSyslogFrame(rec: SinkRecord, opts: SyslogFrameOptions): Buffer {
  return buildSyslogFrames([rec], opts);
}

const message = new JsonWriter(64 * 1024);
const frames = new JsonWriter(256 * 1024);

/**
 * The frames of a batch, one after another (= the buildSyslogFrame of each,
 * concatenated). Each message is written as bytes (the formats' byte
 * writers), then framed with its length: no string per record.
 */
export function buildSyslogFrames(
  batch: readonly SinkRecord[],
  opts: SyslogFrameOptions,
  alloc: (bytes: number) => Buffer = (n) => Buffer.allocUnsafe(n),
): Buffer {
  frames.reset();
  for (const rec of batch) {
    message.reset();
    writeSyslogMessage(message, rec, opts);
    frames.room(message.pos + 12);
    frames.num(message.pos);
    frames.byte(0x20);
    frames.pos += message.buf.copy(frames.buf, frames.pos, 0, message.pos);
  }
  // A copy: the resend window keeps the frames after the writer is reused.
  const out = alloc(frames.pos);
  frames.buf.copy(out, 0, 0, frames.pos);
  return out;
}

// ---------------------------------------------------------------------------
// Config

const schema = z
  .object({
    ...entryKeys('syslog'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).optional(),
    // true = TLS with Node's CA list; false = plain TCP; an object = TLS with these files.
    tls: z.preprocess((v, ctx) => {
      if (v === undefined || v === true) return {};
      if (v === false) return null;
      if (typeof v === 'object' && !Array.isArray(v)) return v;
      ctx.addIssue({
        code: 'custom',
        message: 'expected true, false or { ca, cert, key, serverName, rejectUnauthorized }',
        fatal: true,
      });
      return z.NEVER;
    }, tlsSchema.nullable()),
    facility: z.enum(Object.keys(FACILITIES) as [Facility, ...Facility[]]).default('local0'),
    appName: z
      .string()
      .regex(/^[\x21-\x7e]{1,48}$/, 'must be 1-48 printable ASCII characters without spaces (RFC 5424 APP-NAME)')
      .default('doorwatch'),
    bom: z.boolean().default(false),
    // What a server that died may not have read: our send buffer plus its receive buffer (Linux autotunes
    // them up to 4 MiB and 6 MiB by default). 0 turns resending off.
    resendWindow: z.union([z.literal(0), sizeBytes]).default('10MiB'),
    connectTimeout: durationMs.default('10s'),
    writeTimeout: durationMs.default('30s'),
  })
  .strict()
  .transform(({ name: _n, type: _t, required: _r, port, tls: t, connectTimeout, writeTimeout, resendWindow, ...rest }) => ({
    ...rest,
    resendWindowBytes: resendWindow,
    port: port ?? (t ? 6514 : 514),
    tls: t ?? (false as const),
    connectTimeoutMs: connectTimeout,
    writeTimeoutMs: writeTimeout,
  }));

export type SyslogConfig = z.output<typeof schema>;

// ---------------------------------------------------------------------------
// Transport

/** The server closed the connection as soon as it was established. */
class TurnedAwayError extends Error {}

/** Why a connection failed, and what to do about it, in one line. */
function describeConnectError(err: unknown, cfg: SyslogConfig): string {
  if (err instanceof TurnedAwayError) {
    return cfg.tls
      ? `${cfg.host}:${cfg.port} closed the connection right after the TLS handshake: it does not accept this client — it may require a client certificate (tls.cert, tls.key) signed by a CA it trusts; its log says why`
      : `${cfg.host}:${cfg.port} closed the connection right after accepting it: it does not accept this client (allowed senders?); its log says why`;
  }
  const e = err as NodeJS.ErrnoException;
  const where = `${cfg.host}:${cfg.port}`;
  const code = e.code ? ` (${e.code})` : '';
  const what = `${e.message ?? String(err)}${code}`;
  switch (e.code) {
    case 'ECONNREFUSED':
      return `connection to ${where} refused${code}: check host and port, and that the syslog server has a TCP input on it`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve "${cfg.host}"${code}: check host`;
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `TLS handshake with ${where} failed: ${what} — connect by a name the certificate lists, or set tls.serverName`;
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
      return `TLS handshake with ${where} failed: the server's certificate is not trusted: ${what} — set tls.ca to the CA that issued it`;
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      return `TLS handshake with ${where} failed: ${what} — renew the server's certificate or check the clocks`;
    case 'ECONNRESET':
      return cfg.tls
        ? `${where} closed the connection during the TLS handshake${code}: it may require a client certificate (tls.cert, tls.key) or not speak TLS on this port`
        : `${where} reset the connection${code}`;
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'EPROTO':
      return `TLS handshake with ${where} failed: ${what} — the server does not speak TLS on this port (use tls: false for plain TCP)`;
    default:
      return cfg.tls ? `TLS connection to ${where} failed: ${what}` : `TCP connection to ${where} failed: ${what}`;
  }
}

/** Frames written on one connection: kept until they fall out of the resend window. */
interface Written {
  data: Buffer;
  records: number;
  /** The sink's own buffer `data` is a view of: reused once the batch falls out of the window. */
  slab?: Buffer;
}

/**
 * Buffers of batches fallen out of the resend window, kept for the next
 * batches' frames: a batch of 500 OCSF records is ~1.4 MB, and allocating
 * (and zeroing, and freeing) one per batch was page faults and external
 * memory V8 counts towards its next full collection.
 */
const MAX_SPARE_SLABS = 4;
/**
 * Only batches this large get a buffer of their own (rounded up to a multiple
 * of it, so the next batches of about the same size fit): a small batch is
 * copied into Node's shared pool as before. The window counts the bytes
 * written, not the buffers: a buffer per one-record batch would have let a
 * 10 MiB window hold thousands of them.
 */
const SLAB_MIN = 64 * 1024;

class SyslogSink implements Sink {
  private socket: net.Socket | null = null;
  private connecting: Promise<net.Socket> | null = null;
  private closed = false;
  private readonly frameOpts: SyslogFrameOptions;
  /** The newest batches written on the current connection: as few as cover the last resendWindowBytes. */
  private recent: Written[] = [];
  private recentBytes = 0;
  /** Taken from `recent` when its connection closed unexpectedly: sent again before anything else. */
  private resend: Written[] = [];
  /** Writes and resends one at a time, in order. */
  private serial: Promise<unknown> = Promise.resolve();
  private resendTimer: NodeJS.Timeout | undefined;
  /** The project's one backoff (full jitter): every collector replica resending to a restarted server at once would hit it together. */
  private readonly resendBackoff = new Backoff(100, 30_000);
  /** Records sent a second time (possible duplicates at the receiver), for the log and tests. */
  resentRecords = 0;
  private readonly spare: Buffer[] = [];

  constructor(
    readonly name: string,
    private readonly cfg: SyslogConfig,
    private readonly tlsOpts: tls.ConnectionOptions | null,
    private readonly log: Logger,
  ) {
    this.frameOpts = { facility: cfg.facility, format: cfg.format, appName: cfg.appName, bom: cfg.bom };
  }

  /**
   * One connection attempt, bounded by connectTimeout; resolves once usable. A server may still turn the
   * client away after the handshake completed on our side (TLS 1.3 finishes the client's handshake before
   * the server has checked the client certificate; allowed-sender checks come after accept): it then
   * closes at once, so the connection counts as usable only once it survived a few round trips.
   */
  private connect(): Promise<net.Socket> {
    const { host, port, connectTimeoutMs } = this.cfg;
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const s = this.tlsOpts ? tls.connect({ ...this.tlsOpts, host, port }) : net.connect({ host, port });
      // A syslog server never sends; reading is how its FIN or RST is noticed promptly.
      s.on('data', () => {});
      let timer: NodeJS.Timeout;
      const fail = (err: unknown) => {
        clearTimeout(timer);
        s.off('close', turnedAway);
        s.destroy();
        reject(new Error(`syslog sink "${this.name}": ${describeConnectError(err, this.cfg)}`, { cause: err }));
      };
      const turnedAway = () => fail(new TurnedAwayError());
      timer = setTimeout(
        () => fail(new Error(`no ${this.tlsOpts ? 'TLS handshake' : 'connection'} within ${connectTimeoutMs}ms`)),
        connectTimeoutMs,
      );
      s.once('error', fail);
      s.once(this.tlsOpts ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        s.once('close', turnedAway);
        const settleMs = Math.min(connectTimeoutMs, Math.max(50, 2 * (performance.now() - started)));
        timer = setTimeout(() => {
          s.off('error', fail);
          s.off('close', turnedAway);
          if (this.closed) {
            s.destroy();
            reject(new Error(`syslog sink "${this.name}" is closed`));
            return;
          }
          this.adopt(s);
          resolve(s);
        }, settleMs);
      });
    });
  }

  /** Watch a connected socket; it is forgotten when it closes, so the next write reconnects. */
  private adopt(s: net.Socket): void {
    s.setNoDelay(true);
    s.setKeepAlive(true, 30_000);
    s.on('end', () => s.destroy());
    s.on('error', (err) => this.log.warn({ err: err.message }, 'syslog connection error'));
    s.on('close', () => {
      if (this.socket !== s) return;
      this.socket = null;
      if (this.closed) return;
      // The server may have died before reading what its kernel took: send it again on the next connection.
      const records = this.recent.reduce((n, w) => n + w.records, 0);
      this.resend.push(...this.recent);
      this.recent = [];
      this.recentBytes = 0;
      this.log.warn(
        { resend: records },
        records
          ? 'syslog connection closed; reconnecting to resend the last records written on it (the server may not have read them: receivers may see duplicates, dedupe on the id parameter)'
          : 'syslog connection closed; reconnecting on the next write',
      );
      if (records) this.scheduleResend();
    });
    this.socket = s;
    this.log.info({ host: this.cfg.host, port: this.cfg.port, tls: !!this.tlsOpts }, 'syslog connected');
  }

  private async ensureConnected(): Promise<net.Socket> {
    if (this.socket && !this.socket.destroyed) return this.socket;
    this.connecting ??= this.connect().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  /** Resolves when the kernel has taken every byte (see "Delivery guarantees" in the doc). */
  private send(s: net.Socket, data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (err?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        s.off('close', onClose);
        if (err)
          reject(
            new Error(`syslog sink "${this.name}": write to ${this.cfg.host}:${this.cfg.port} failed: ${err.message}`, {
              cause: err,
            }),
          );
        else resolve();
      };
      const onClose = () => finish(new Error('connection closed before the data was written'));
      const timer = setTimeout(() => {
        // The server stopped reading: drop the connection; the retry resends the whole batch on a new one.
        finish(new Error(`not written within ${this.cfg.writeTimeoutMs}ms (server not reading)`));
        s.destroy();
      }, this.cfg.writeTimeoutMs);
      s.once('close', onClose);
      s.write(data, (err) => finish(err ?? undefined));
    });
  }

  async write(batch: SinkRecord[]): Promise<void> {
    if (this.closed) throw new Error(`syslog sink "${this.name}" is closed`);
    if (batch.length === 0) return;
    let slab: Buffer | undefined;
    const data = buildSyslogFrames(batch, this.frameOpts, (n) => {
      if (n < SLAB_MIN) return Buffer.allocUnsafe(n);
      slab = this.takeSlab(n);
      return slab.subarray(0, n);
    });
    const records = batch.length;
    await this.inOrder(() => this.sendWithResend({ data, records, slab }));
  }

  /** A spare buffer of at least n bytes, else a new one (n >= SLAB_MIN). */
  private takeSlab(n: number): Buffer {
    const i = this.spare.findIndex((b) => b.length >= n);
    return i >= 0 ? this.spare.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(Math.ceil(n / SLAB_MIN) * SLAB_MIN);
  }

  private inOrder<T>(op: () => Promise<T>): Promise<T> {
    const run = this.serial.then(op, op);
    this.serial = run.catch(() => {});
    return run;
  }

  /** What is waiting to be resent goes first, on the same connection, then `next` (if any). */
  private async sendWithResend(next: Written | null): Promise<void> {
    // One turn of the event loop first: a FIN or RST already in the kernel closes the socket now, so the
    // batch goes to a new connection instead of into a dead one (where the kernel would still accept it).
    await new Promise((r) => setImmediate(r));
    const s = await this.ensureConnected();
    const resend = this.resend;
    if (resend.length) {
      const records = resend.reduce((n, w) => n + w.records, 0);
      await this.send(s, Buffer.concat(resend.map((w) => w.data)));
      this.resend = this.resend.filter((w) => !resend.includes(w));
      this.resentRecords += records;
      for (const w of resend) this.remember(w);
      this.log.info({ records }, 'syslog: resent the records a closed connection may have lost');
    }
    if (next) {
      await this.send(s, next.data);
      this.remember(next);
    }
    this.resendBackoff.reset();
  }

  private remember(w: Written): void {
    if (this.cfg.resendWindowBytes === 0) return;
    this.recent.push(w);
    this.recentBytes += w.data.length;
    while (this.recent.length > 1 && this.recentBytes - this.recent[0]!.data.length >= this.cfg.resendWindowBytes) {
      const old = this.recent.shift()!;
      this.recentBytes -= old.data.length;
      // Written and out of the window: nothing refers to its bytes any more.
      if (old.slab && this.spare.length < MAX_SPARE_SLABS) this.spare.push(old.slab);
    }
  }

  /** Resend without waiting for the next batch (the stream may have ended), backing off while the server is away. */
  private scheduleResend(): void {
    if (this.resendTimer || this.closed) return;
    this.resendTimer = setTimeout(() => {
      this.resendTimer = undefined;
      if (this.closed || this.resend.length === 0) return;
      this.inOrder(() => this.sendWithResend(null)).catch((err: Error) => {
        this.log.warn({ err: err.message }, 'syslog: resend failed; retrying');
        this.scheduleResend();
      });
    }, this.resendBackoff.next());
    this.resendTimer.unref();
  }

  async flush(): Promise<void> {
    // Nothing is buffered here: every write resolves only once its bytes are in the kernel.
  }

  async close(): Promise<void> {
    if (this.closed) return;
    clearTimeout(this.resendTimer);
    // One last try for what a lost connection may not have delivered.
    if (this.resend.length) await this.inOrder(() => this.sendWithResend(null)).catch(() => {});
    await this.serial;
    if (this.resend.length) {
      const records = this.resend.reduce((n, w) => n + w.records, 0);
      this.log.warn({ records }, 'syslog sink closed with records a lost connection may not have delivered');
    }
    this.closed = true;
    await this.connecting?.catch(() => {});
    const s = this.socket;
    if (!s || s.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => s.destroy(), this.cfg.connectTimeoutMs);
      s.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      s.end();
    });
  }

  /** Used by create(): the first connection must succeed, or the sink does not start. */
  async start(): Promise<void> {
    await this.ensureConnected();
  }
}

export const syslogSink: SinkFactory<SyslogConfig> = {
  type: 'syslog',

  parse: (config, path) => parseConfig(schema, 'syslog', config, path),

  async create(name: string, config: SyslogConfig, deps: SinkDeps): Promise<Sink> {
    const { log } = deps;
    let tlsOpts: tls.ConnectionOptions | null = null;
    if (config.tls) {
      const t = config.tls;
      try {
        tlsOpts = {
          ca: readTlsFile('ca', t.ca),
          cert: readTlsFile('cert', t.cert),
          key: readTlsFile('key', t.key),
          rejectUnauthorized: t.rejectUnauthorized,
          minVersion: 'TLSv1.2',
        };
      } catch (e) {
        throw new Error(`syslog sink "${name}": ${(e as Error).message}`, { cause: e });
      }
      if (t.serverName) tlsOpts.servername = t.serverName;
      if (!t.rejectUnauthorized) log.warn('tls.rejectUnauthorized is false: the syslog server is not authenticated');
    }
    const sink = new SyslogSink(name, config, tlsOpts, log);
    await sink.start();
    return sink;
  },
};
