import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './temp-dir.js';

/**
 * Real certificates made by openssl at test time: a CA, a server cert for
 * 127.0.0.1/localhost, client certs, and a second unrelated CA (for
 * "wrong CA" tests). Files and PEM strings both, for Node and for rsyslog.
 */

export interface CertFiles {
  cert: string;
  key: string;
  certPem: Buffer;
  keyPem: Buffer;
}

export interface Pki {
  dir: string;
  caFile: string;
  caPem: Buffer;
  server: CertFiles;
  client(name: string): CertFiles;
  /** An unrelated CA with its own client and server certs. */
  other: { caFile: string; caPem: Buffer; client: CertFiles; server: CertFiles };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(dir: string, name: string): string {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
    ],
    dir,
  );
  return join(dir, `${name}.crt`);
}

function issue(dir: string, ca: string, name: string, kind: 'server' | 'client'): CertFiles {
  openssl(
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
    ],
    dir,
  );
  const ext =
    kind === 'server'
      ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'
      : `subjectAltName=DNS:${name}\nextendedKeyUsage=clientAuth\n`;
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ],
    dir,
  );
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  return { cert, key, certPem: readFileSync(cert), keyPem: readFileSync(key) };
}

export function makePki(): Pki {
  const dir = tempDir('doorwatch-pki-');
  const caFile = makeCa(dir, 'ca');
  const otherCa = makeCa(dir, 'other-ca');
  return {
    dir,
    caFile,
    caPem: readFileSync(caFile),
    server: issue(dir, 'ca', 'server', 'server'),
    client: (name) => issue(dir, 'ca', name, 'client'),
    other: {
      caFile: otherCa,
      caPem: readFileSync(otherCa),
      client: issue(dir, 'other-ca', 'intruder', 'client'),
      server: issue(dir, 'other-ca', 'impostor', 'server'),
    },
  };
}

/** The CLI's mutual-TLS flags for a certificate of this PKI (agent, tail). */
export const tlsFlags = (caFile: string, c: { cert: string; key: string }): string[] => [
  '--ca',
  caFile,
  '--cert',
  c.cert,
  '--key',
  c.key,
];
