import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
/**
 * A REAL syslog-ng (Debian 12's syslog-ng-core 3.38) as a foreground child process: a TLS `syslog()` source
 * (RFC 5425: RFC 5424 messages with octet-counting framing) in, a file out. A second, independent RFC 5424
 * parser next to rsyslog's (rsyslog.ts): the two parse structured data differently, and SIEM pipelines put
 * either in front of the SIEM.
 *
 * syslog-ng-core conflicts with rsyslog as a Debian package (both provide system-log-daemon), so
 * scripts/setup.sh --test unpacks the package into SYSLOG_NG_ROOT instead of installing it; the binary runs
 * from there with its own library and module directories, never as the host's log daemon.
 *
 * Two ways to parse, as syslog-ng users configure them:
 *   source         the `syslog()` source parses RFC 5424 itself (`flags(syslog-protocol)`, its default)
 *   syslog-parser  the source only frames (`flags(no-parse)`); a `syslog-parser(flags(syslog-protocol))`
 *                  in the log path parses
 *
 * The output template writes each field syslog-ng PARSED as its own JSON value — ${S_ISODATE}, $HOST,
 * $PROGRAM, $PID, $MSGID, $PRI, $MSG and every structured-data parameter (`--scope sdata`, nested under
 * `_SDATA` by SD-ID) — so a test compares parsed values, not raw bytes.
 */
import { type SyslogDaemon, startSyslogDaemon } from './syslog-daemon.js';
import { freePort } from './wait.js';

export const SYSLOG_NG_ROOT = '/opt/doorwatch-test/syslog-ng-core';
const BIN = join(SYSLOG_NG_ROOT, 'usr/sbin/syslog-ng');

/** One received message, as syslog-ng parsed it. */
export interface SyslogNgReceived {
  pri: string;
  /** ${S_ISODATE}: the sender's timestamp, microseconds, in UTC ("2023-11-14T22:13:20.123456+00:00"). */
  ts: string;
  host: string;
  app: string;
  /** "" for NILVALUE. */
  pid: string;
  msgid: string;
  /** MSG without the BOM. */
  msg: string;
  /** SD-ID -> PARAM-NAME -> value, unescaped; absent when the message has none. */
  _SDATA?: Record<string, Record<string, string>>;
}

export type SyslogNg = SyslogDaemon<SyslogNgReceived>;

export interface SyslogNgOptions {
  /** The server's certificate and key (TLS is always on: RFC 5425). */
  certFile: string;
  keyFile: string;
  parse: 'source' | 'syslog-parser';
  /** Defaults to a free ephemeral port. */
  port?: number;
}

const q = (s: string) => JSON.stringify(s);

function config(outFile: string, port: number, o: SyslogNgOptions): string {
  const macros = { pri: 'PRI', ts: 'S_ISODATE', host: 'HOST', app: 'PROGRAM', pid: 'PID', msgid: 'MSGID', msg: 'MSG' };
  const pairs = Object.entries(macros)
    .map(([k, macro]) => `--pair ${k}=$\{${macro}}`)
    .join(' ');
  const flags = o.parse === 'source' ? 'syslog-protocol' : 'no-parse';
  const parser = o.parse === 'syslog-parser' ? 'parser { syslog-parser(flags(syslog-protocol)); };' : '';
  return `@version: 3.38
options {
  keep-hostname(yes); keep-timestamp(yes); chain-hostnames(no); use-dns(no); use-fqdn(no);
  frac-digits(6); stats-freq(0); log-msg-size(1048576);
};
source s_tls {
  syslog(ip("127.0.0.1") port(${port}) transport("tls") flags(${flags}) max-connections(100) log-msg-size(1048576)
    tls(key-file(${q(o.keyFile)}) cert-file(${q(o.certFile)}) peer-verify(optional-untrusted)));
};
destination d_file {
  file(${q(outFile)} time-zone("+00:00") template("$(format-json ${pairs} --scope sdata)\\n"));
};
log { source(s_tls); ${parser} destination(d_file); flags(flow-control); };
`;
}

/** Starts syslog-ng and resolves once its TLS port accepts connections (bounded). */
export async function startSyslogNg(opts: SyslogNgOptions): Promise<SyslogNg> {
  if (!existsSync(BIN)) {
    throw new Error(`${BIN} is missing: run \`bash scripts/setup.sh --test\` (unpacks Debian's syslog-ng-core there)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'doorwatch-syslog-ng-'));
  const port = opts.port ?? (await freePort());
  const outFile = join(dir, 'received.jsonl');
  const confFile = join(dir, 'syslog-ng.conf');
  writeFileSync(confFile, config(outFile, port, opts));
  const args = [
    '--foreground',
    '--stderr',
    '--no-caps',
    `--cfgfile=${confFile}`,
    `--module-path=${join(SYSLOG_NG_ROOT, 'usr/lib/syslog-ng/3.38')}`,
    `--persist-file=${join(dir, 'syslog-ng.persist')}`,
    `--pidfile=${join(dir, 'syslog-ng.pid')}`,
    `--control=${join(dir, 'syslog-ng.ctl')}`,
  ];
  // The binary's RUNPATH is /usr/lib/syslog-ng; its libraries are in the unpacked tree.
  const env = { ...process.env, LD_LIBRARY_PATH: join(SYSLOG_NG_ROOT, 'usr/lib/syslog-ng') };
  return startSyslogDaemon<SyslogNgReceived>({ name: 'syslog-ng', command: BIN, args, env, dir, port, outFile });
}
