import { isIP } from 'node:net';
import { checkServerIdentity, connect as tlsConnect } from 'node:tls';
import { parseHostPort } from '../config/host-port.js';

/**
 * One TCP + TLS handshake and HTTP/2 preface exchange with the collector,
 * then hang up — before a gRPC channel is made for a stream.
 *
 * Why: with TLS 1.3 a server that refuses our client certificate says so
 * only after the handshake, with an alert. grpc-js 1.14 then leaves its
 * socket open (CLOSE-WAIT) on every attempt: an agent with a missing client
 * certificate retrying every 30 s would leak ~3000 descriptors a day. Here
 * we own the socket and always destroy it, so a refused agent leaks nothing,
 * and the error is the TLS stack's own words.
 *
 * Success = the server sent anything after our preface (its SETTINGS frame):
 * it accepted the handshake, client certificate included.
 */

export interface PreflightTls {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
  serverName?: string;
}

/** "PRI * HTTP/2.0" connection preface and an empty SETTINGS frame. */
const H2_PREFACE = Buffer.concat([
  Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'),
  Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
]);

export function preflight(target: string, tls: PreflightTls, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const hp = parseHostPort(target);
  if (!hp) return Promise.resolve(); // a form we do not parse: let grpc-js handle it
  const name = tls.serverName ?? hp.host;
  return new Promise((resolve, reject) => {
    const sock = tlsConnect({
      host: hp.host,
      port: hp.port,
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      servername: isIP(name) ? undefined : name,
      ALPNProtocols: ['h2'],
      checkServerIdentity: (_host, cert) => checkServerIdentity(name, cert),
    });
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      sock.destroy();
      if (err) reject(err);
      else resolve();
    };
    const onAbort = (): void => finish(new Error('aborted'));
    const timer = setTimeout(
      () => finish(new Error(`no TLS/HTTP/2 answer from ${target} within ${timeoutMs} ms (ETIMEDOUT)`)),
      timeoutMs,
    );
    signal?.addEventListener('abort', onAbort);
    sock.once('secureConnect', () => sock.write(H2_PREFACE));
    sock.once('data', () => finish());
    sock.once('error', (err) => finish(err));
    sock.once('close', () => finish(new Error('the collector closed the connection during setup')));
  });
}
