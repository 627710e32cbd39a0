import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type ChannelOptions, connectivityState, Server, ServerCredentials } from '@grpc/grpc-js';
import { ChannelCredentials, createChannel } from 'nice-grpc';
import { collectorTlsName } from '../../src/agent/collector-tls.js';
import { makePki, type Pki } from '../helpers/pki.js';

/**
 * The collector addressed by IP address (agent --collector 10.0.0.7:7443, tail --server): grpc-js must not
 * send the IP as TLS ServerName (Node's DEP0123 warning, a non-JSON line on stderr), and the certificate
 * must still be verified against that IP. Real TLS: grpc-js client and server, openssl-made certificates.
 */

let pki: Pki;
const warnings: string[] = [];
const servers: Server[] = [];

before(() => {
  pki = makePki();
  process.on('warning', (w) => warnings.push(`${w.name}: ${w.message}`));
});
after(async () => {
  for (const s of servers) s.forceShutdown();
  rmSync(pki.dir, { recursive: true, force: true });
});

/** A gRPC server (no services: the HTTP/2 handshake is what a channel needs to be READY) with this certificate. */
async function server(cert: { certPem: Buffer; keyPem: Buffer }, address = '127.0.0.1:0'): Promise<number> {
  const s = new Server();
  servers.push(s);
  const creds = ServerCredentials.createSsl(null, [{ cert_chain: cert.certPem, private_key: cert.keyPem }], false);
  return new Promise((resolve, reject) => s.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port))));
}

/** READY, or the state it settled in when it could not get there within timeoutMs. */
async function connect(target: string, serverName?: string, timeoutMs = 3000): Promise<string> {
  const name = collectorTlsName(target, serverName);
  const creds = ChannelCredentials.createSsl(pki.caPem, null, null, name.verifyOptions);
  const channel = createChannel(target, creds, name.channelOptions as ChannelOptions);
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const state = channel.getConnectivityState(true);
      if (state === connectivityState.READY || Date.now() > deadline) return connectivityState[state];
      await new Promise<void>((resolve) => channel.watchConnectivityState(state, deadline, () => resolve()));
    }
  } finally {
    channel.close();
  }
}

describe('collector TLS name', () => {
  it('an IP target: connects, verified against the IP SAN, and Node gives no ServerName warning', async () => {
    const port = await server(pki.server); // SAN IP:127.0.0.1, DNS:localhost
    assert.equal(await connect(`127.0.0.1:${port}`), 'READY');
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    assert.deepEqual(warnings, [], 'no warning (DEP0123: TLS ServerName set to an IP address)');
  });

  it('an IP target whose certificate does not list that IP is refused', async () => {
    const port = await server(pki.server, '[::1]:0'); // lists 127.0.0.1, not ::1
    assert.notEqual(await connect(`[::1]:${port}`, undefined, 1500), 'READY');
    // The same server by the name its certificate lists: accepted (so the refusal above is the IP check).
    assert.equal(await connect(`[::1]:${port}`, 'localhost'), 'READY');
  });

  it('a certificate from another CA is refused by IP too', async () => {
    const port = await server(pki.other.server);
    assert.notEqual(await connect(`127.0.0.1:${port}`, undefined, 1500), 'READY');
  });

  it('--server-name: a host name is verified (and sent) as given; an IP address is verified as an IP', async () => {
    const port = await server(pki.server);
    assert.equal(await connect(`127.0.0.1:${port}`, 'localhost'), 'READY');
    assert.equal(await connect(`localhost:${port}`, '127.0.0.1'), 'READY');
    assert.notEqual(await connect(`127.0.0.1:${port}`, 'collector.example', 1500), 'READY');
    assert.notEqual(await connect(`localhost:${port}`, '10.9.9.9', 1500), 'READY');
    assert.deepEqual(warnings, []);
  });
});
