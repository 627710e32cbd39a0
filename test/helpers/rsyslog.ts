import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
/**
 * A REAL rsyslogd (Debian's /usr/sbin/rsyslogd, rsyslog-gnutls for TLS) as a
 * child process in the foreground, with its own work directory, config, pid
 * file and an ephemeral port: imtcp (plain or gtls) in, omfile out.
 *
 * The output template writes one JSON object per received message with the
 * raw message (rawmsg: the RFC 5424 text without its octet-count prefix) and
 * the fields rsyslog's own RFC 5424 parser extracted, so a test checks both
 * that the bytes arrived intact and that a real receiver parses them as
 * intended. parseRfc5424() splits the raw text independently of rsyslog.
 */
import { type SyslogDaemon, startSyslogDaemon } from './syslog-daemon.js';
import { freePort } from './wait.js';

export const RSYSLOGD = '/usr/sbin/rsyslogd';

export interface RsyslogTls {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** anon: any client; x509/certvalid: the client must present a certificate signed by caFile. */
  authMode?: 'anon' | 'x509/certvalid';
}

export interface RsyslogOptions {
  /** Omit for plain TCP. */
  tls?: RsyslogTls;
  /** Defaults to a free ephemeral port. */
  port?: number;
}

/** One received message: rsyslog's view of it. */
export interface Received {
  /** The message as received, without framing. */
  raw: string;
  pri: string;
  timestamp: string;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  structuredData: string;
  msg: string;
}

export type Rsyslog = SyslogDaemon<Received>;

const q = (s: string) => JSON.stringify(s);

const FIELDS: [keyof Received, string][] = [
  ['raw', 'property(name="rawmsg" format="json")'],
  ['pri', 'property(name="pri" format="json")'],
  ['timestamp', 'property(name="timereported" dateFormat="rfc3339" format="json")'],
  ['hostname', 'property(name="hostname" format="json")'],
  ['appName', 'property(name="app-name" format="json")'],
  ['procId', 'property(name="procid" format="json")'],
  ['msgId', 'property(name="msgid" format="json")'],
  ['structuredData', 'property(name="structured-data" format="json")'],
  ['msg', 'property(name="msg" format="json")'],
];

function config(dir: string, outFile: string, port: number, tls: RsyslogTls | undefined): string {
  // format="json" escapes a property for use inside a JSON string; the constants supply the quotes.
  const template = FIELDS.map(([k, prop], i) => `  constant(value=${q(`${i === 0 ? '{' : '",'}"${k}":"`)}) ${prop}`).join('\n');
  const globals = [
    `workDirectory=${q(dir)}`,
    'maxMessageSize="64k"',
    // Keep raw control characters (a newline inside a message): octet counting is what delimits messages.
    'parser.escapeControlCharactersOnReceive="off"',
  ];
  let mod = 'module(load="imtcp")';
  if (tls) {
    globals.push(
      `defaultNetstreamDriverCAFile=${q(tls.caFile)}`,
      `defaultNetstreamDriverCertFile=${q(tls.certFile)}`,
      `defaultNetstreamDriverKeyFile=${q(tls.keyFile)}`,
    );
    mod = `module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode=${q(tls.authMode ?? 'anon')})`;
  }
  return `global(${globals.join(' ')})
${mod}
template(name="received" type="list") {
${template}
  constant(value="\\"}\\n")
}
ruleset(name="remote") { action(type="omfile" file=${q(outFile)} template="received") }
input(type="imtcp" port="${port}" ruleset="remote")
`;
}

/** Starts rsyslogd and resolves once its TCP port accepts connections (bounded). */
export async function startRsyslog(opts: RsyslogOptions = {}): Promise<Rsyslog> {
  if (!existsSync(RSYSLOGD))
    throw new Error(`${RSYSLOGD} is missing: run \`bash scripts/setup.sh --test\` (rsyslog, rsyslog-gnutls)`);
  const dir = mkdtempSync(join(tmpdir(), 'doorwatch-rsyslog-'));
  const port = opts.port ?? (await freePort());
  const outFile = join(dir, 'received.jsonl');
  const confFile = join(dir, 'rsyslog.conf');
  writeFileSync(confFile, config(dir, outFile, port, opts.tls));
  const args = ['-n', '-f', confFile, '-i', join(dir, 'rsyslogd.pid')];
  return startSyslogDaemon<Received>({ name: 'rsyslogd', command: RSYSLOGD, args, dir, port, outFile });
}

/** An RFC 5424 message split into its fields, independently of rsyslog. */
export interface Rfc5424 {
  pri: number;
  version: number;
  timestamp: string;
  hostname: string;
  appName: string;
  procId: string;
  msgId: string;
  /** SD-ID -> params, unescaped; {} for NILVALUE. */
  sd: Record<string, Record<string, string>>;
  msg: string;
}

export function parseRfc5424(raw: string): Rfc5424 {
  const head = /^<(\d{1,3})>(\d) (\S+) (\S+) (\S+) (\S+) (\S+) /.exec(raw);
  if (!head) throw new Error(`not an RFC 5424 header: ${raw.slice(0, 120)}`);
  let i = head[0].length;
  const sd: Rfc5424['sd'] = {};
  if (raw[i] === '-') i += 1;
  else {
    while (raw[i] === '[') {
      const id = /^\[([^ =\]"]+)/.exec(raw.slice(i));
      if (!id) throw new Error(`bad SD-ELEMENT at ${i}`);
      i += id[0].length;
      const params: Record<string, string> = {};
      while (raw[i] === ' ') {
        const name = /^ ([^ =\]"]+)="/.exec(raw.slice(i));
        if (!name) throw new Error(`bad SD-PARAM at ${i}`);
        i += name[0].length;
        let value = '';
        for (; raw[i] !== '"'; i++) {
          if (i >= raw.length) throw new Error('unterminated PARAM-VALUE');
          if (raw[i] === '\\' && (raw[i + 1] === '"' || raw[i + 1] === '\\' || raw[i + 1] === ']')) i++;
          value += raw[i];
        }
        i++;
        params[name[1]!] = value;
      }
      if (raw[i] !== ']') throw new Error(`SD-ELEMENT not closed at ${i}`);
      i++;
      sd[id[1]!] = params;
    }
  }
  if (i < raw.length && raw[i] !== ' ') throw new Error(`expected a space before MSG at ${i}`);
  return {
    pri: Number(head[1]),
    version: Number(head[2]),
    timestamp: head[3]!,
    hostname: head[4]!,
    appName: head[5]!,
    procId: head[6]!,
    msgId: head[7]!,
    sd,
    msg: raw.slice(i + 1),
  };
}
