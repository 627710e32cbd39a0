import { readFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import {
  type ChannelOptions,
  Server as GrpcServer,
  type ServiceDefinition as GrpcServiceDefinition,
  type handleBidiStreamingCall,
  type handleServerStreamingCall,
  ServerCredentials,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
} from '@grpc/grpc-js';
import { type CallContext, ServerError, type ServerMiddleware, Status } from 'nice-grpc';
import * as bidiCall from 'nice-grpc/lib/server/handleBidiStreamingCall.js';
import * as serverStreamingCall from 'nice-grpc/lib/server/handleServerStreamingCall.js';
import * as serviceDefinitions from 'nice-grpc/lib/service-definitions/index.js';
import { parseHostPort } from '../config/host-port.js';
import type { PeerCredentials } from './auth/authorizer.js';
import type { LimitsConfig } from './config.js';
import { peerAddress, type RefusalReason, type Refusals, reasonOfStatus } from './refusals.js';

/**
 * The collector's socket, in front of grpc-js. We own the TCP (and TLS)
 * listener and hand each established connection to grpc-js through its
 * connection injector (grpc-js >= 1.11 `createConnectionInjector`), because
 * grpc-js hides everything an operator needs to see a refusal:
 *
 * - TLS failures (no client certificate, one from another CA, an expired
 *   one, plaintext on a TLS port) happen inside its http2 secure server and
 *   are never reported; our tls.Server's `tlsClientError` names them.
 * - Connections per peer are capped before the handshake, the handshake has
 *   a deadline, and the client certificate's identity is kept per connection
 *   for the authorizer (nice-grpc's CallContext does not carry it).
 * - Every non-OK status grpc-js or a handler sends (including the ones
 *   grpc-js sends itself, such as RESOURCE_EXHAUSTED for an oversized
 *   message) is seen by one interceptor and recorded as a refusal.
 * - Streams per peer and new calls per second per peer are capped by a
 *   nice-grpc middleware (RESOURCE_EXHAUSTED).
 *
 * The services are added to a grpc-js Server with nice-grpc's own method
 * handlers (its createServer() does not expose the grpc-js Server the
 * injector lives on).
 */

/*
 * nice-grpc's own method handlers, which its typings do not export. Imported
 * (not required at run time) so that a bundle holds one copy of nice-grpc and
 * nice-grpc-common: two copies would break its `instanceof ServerError`.
 */
type Middleware = ServerMiddleware<object, object> | undefined;
const { createBidiStreamingMethodHandler } = bidiCall as unknown as {
  createBidiStreamingMethodHandler(def: unknown, impl: unknown, mw: Middleware): handleBidiStreamingCall<unknown, unknown>;
};
const { createServerStreamingMethodHandler } = serverStreamingCall as unknown as {
  createServerStreamingMethodHandler(def: unknown, impl: unknown, mw: Middleware): handleServerStreamingCall<unknown, unknown>;
};
const { normalizeServiceDefinition, toGrpcJsServiceDefinition } = serviceDefinitions as unknown as {
  normalizeServiceDefinition(d: unknown): Record<string, { requestStream: boolean; responseStream: boolean }>;
  toGrpcJsServiceDefinition(d: unknown): GrpcServiceDefinition;
};

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
  requireClientCert: boolean;
}

export interface ListenerOptions {
  /** host:port. */
  address: string;
  /** undefined: plaintext. */
  tls: TlsMaterial | undefined;
  grpcOptions: ChannelOptions;
  limits: LimitsConfig;
  refusals: Refusals;
  now?: () => number;
}

export interface Listener {
  readonly port: number;
  /** What the TLS handshake established about the peer of a call (`ctx.peer`). */
  peerCredentials(peer: string): PeerCredentials | undefined;
  /** Open connections per peer address (tests, stats). */
  connections(): number;
  /** Refuse new calls and wait for open ones (grpc-js tryShutdown), then close the socket. */
  shutdown(): Promise<void>;
  forceShutdown(): void;
}

/** Classify a handshake failure; the messages are OpenSSL's, as Node reports them. */
export function tlsReason(err: Error & { code?: string }): { reason: RefusalReason; detail: string } {
  const text = `${err.code ?? ''} ${err.message}`;
  if (/PEER_DID_NOT_RETURN_A_CERTIFICATE|peer did not return a certificate/i.test(text)) {
    return { reason: 'tls_no_certificate', detail: 'the client sent no certificate' };
  }
  if (/CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|certificate has expired|certificate expired/i.test(text)) {
    return { reason: 'tls_expired', detail: 'the client certificate has expired' };
  }
  if (
    /UNKNOWN_CA|UNABLE_TO_(GET_ISSUER|VERIFY|DECRYPT)|SELF_SIGNED|CERT_SIGNATURE_FAILURE|CERT_UNTRUSTED|certificate verify failed/i.test(
      text,
    )
  ) {
    return { reason: 'tls_unknown_ca', detail: `the client certificate is not signed by tls.clientCa (${err.message})` };
  }
  if (/ETIMEDOUT|timed out|timeout/i.test(text)) return { reason: 'tls_handshake', detail: 'TLS handshake timed out' };
  if (/WRONG_VERSION_NUMBER|http request|unknown protocol|wrong version/i.test(text)) {
    return { reason: 'tls_handshake', detail: 'not TLS (a plaintext client on the TLS port?)' };
  }
  return { reason: 'tls_handshake', detail: err.message };
}

/** DNS SANs first, then the subject CN: the names a static mapping may use. */
export function certIdentities(cert: tls.PeerCertificate | undefined): string[] {
  if (!cert?.raw) return [];
  const ids: string[] = [];
  for (const part of (cert.subjectaltname ?? '').split(/,\s*/)) {
    const m = /^(DNS|URI|email):(.+)$/.exec(part);
    if (m) ids.push(m[2]!);
  }
  const cn = cert.subject?.CN;
  for (const c of Array.isArray(cn) ? cn : cn ? [cn] : []) if (!ids.includes(c)) ids.push(c);
  return ids;
}

/** Which reason a non-OK status is recorded under; details distinguish our own RESOURCE_EXHAUSTED causes. */
function statusReason(code: number, details: string): RefusalReason | undefined {
  if (code === Status.RESOURCE_EXHAUSTED && details.startsWith(TOO_MANY_STREAMS)) return 'too_many_streams';
  if (code === Status.RESOURCE_EXHAUSTED && details.startsWith(RATE_LIMITED)) return 'rate_limited';
  if (code === Status.UNAVAILABLE && /^cannot (look up|check access)/.test(details)) return 'auth_unavailable';
  return reasonOfStatus(code);
}

const TOO_MANY_STREAMS = 'too many streams from';
const RATE_LIMITED = 'rate limited:';

class PeerCalls {
  readonly #active = new Map<string, number>();
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly limits: LimitsConfig,
    private readonly now: () => number,
  ) {}

  /** Throws RESOURCE_EXHAUSTED when the peer is over a limit; else counts the call (release() when it ends). */
  admit(address: string): void {
    const rate = this.limits.callsPerSecondPerPeer;
    const burst = rate * 2;
    const t = this.now();
    const b = this.#buckets.get(address) ?? { tokens: burst, at: t };
    b.tokens = Math.min(burst, b.tokens + ((t - b.at) / 1000) * rate);
    b.at = t;
    if (this.#buckets.size > 10_000) this.#prune(t);
    this.#buckets.set(address, b);
    if (b.tokens < 1) {
      throw new ServerError(
        Status.RESOURCE_EXHAUSTED,
        `${RATE_LIMITED} more than ${rate} new calls per second from ${address}; retry later`,
      );
    }
    b.tokens -= 1;
    const n = this.#active.get(address) ?? 0;
    if (n >= this.limits.streamsPerPeer) {
      throw new ServerError(
        Status.RESOURCE_EXHAUSTED,
        `${TOO_MANY_STREAMS} ${address}: ${n} open, at most ${this.limits.streamsPerPeer} (limits.streamsPerPeer)`,
      );
    }
    this.#active.set(address, n + 1);
  }

  release(address: string): void {
    const n = (this.#active.get(address) ?? 1) - 1;
    if (n <= 0) this.#active.delete(address);
    else this.#active.set(address, n);
  }

  #prune(t: number): void {
    // A full bucket carries no state: forget it.
    for (const [k, v] of this.#buckets) if ((t - v.at) / 1000 >= 2) this.#buckets.delete(k);
  }
}

export interface ServiceBinding {
  definition: unknown;
  implementation: Record<string, unknown>;
}

export async function listen(service: ServiceBinding, o: ListenerOptions): Promise<Listener> {
  const now = o.now ?? (() => performance.now());
  const calls = new PeerCalls(o.limits, now);

  const limitCalls: ServerMiddleware<object, object> = async function* (call, context: CallContext) {
    const address = peerAddress(context.peer);
    calls.admit(address);
    try {
      return yield* call.next(call.request, context);
    } finally {
      calls.release(address);
    }
  };

  // Sees every status, ours and grpc-js's own (it is the innermost call: grpc-js sends its internal
  // statuses, e.g. an oversized message, through this object's sendStatus).
  const recordStatuses: ServerInterceptor = (_method, call: ServerInterceptingCallInterface) => {
    const send = call.sendStatus.bind(call);
    call.sendStatus = (status) => {
      const reason = statusReason(status.code, status.details ?? '');
      if (reason) o.refusals.record(call.getPeer(), reason, `${Status[status.code]}: ${status.details ?? ''}`);
      send(status);
    };
    return new ServerInterceptingCall(call);
  };

  const grpc = new GrpcServer({ ...o.grpcOptions, interceptors: [recordStatuses] });
  const methods = normalizeServiceDefinition(service.definition);
  const handlers: Record<string, unknown> = {};
  for (const [name, def] of Object.entries(methods)) {
    const impl = (service.implementation[name] as (...a: unknown[]) => unknown).bind(service.implementation);
    if (def.requestStream && def.responseStream) handlers[name] = createBidiStreamingMethodHandler(def, impl, limitCalls);
    else if (!def.requestStream && def.responseStream) handlers[name] = createServerStreamingMethodHandler(def, impl, limitCalls);
    else throw new Error(`listener: method ${name} has a shape the collector does not serve`);
  }
  grpc.addService(toGrpcJsServiceDefinition(methods), handlers as never);
  const injector = grpc.createConnectionInjector(ServerCredentials.createInsecure());

  // Connections per peer address; the certificate identities per `address:port` (grpc-js's getPeer()).
  const perPeer = new Map<string, number>();
  const identities = new Map<string, PeerCredentials>();
  let open = 0;
  // Every accepted socket, so that a forced shutdown also ends handshakes still in progress.
  const sockets = new Set<net.Socket>();

  const admitSocket = (socket: net.Socket): string | undefined => {
    const address = peerAddress(socket.remoteAddress ?? '');
    const n = perPeer.get(address) ?? 0;
    if (n >= o.limits.connectionsPerPeer) {
      o.refusals.record(
        `${socket.remoteAddress}:${socket.remotePort}`,
        'too_many_connections',
        `${n} open, at most ${o.limits.connectionsPerPeer} (limits.connectionsPerPeer)`,
      );
      socket.destroy();
      return undefined;
    }
    perPeer.set(address, n + 1);
    open++;
    sockets.add(socket);
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.once('close', () => {
      open--;
      sockets.delete(socket);
      identities.delete(key);
      const m = (perPeer.get(address) ?? 1) - 1;
      if (m <= 0) perPeer.delete(address);
      else perPeer.set(address, m);
    });
    socket.on('error', () => {}); // resets by hostile or dying clients are not our errors
    return key;
  };

  let server: net.Server;
  if (o.tls) {
    const t = o.tls;
    const ts = tls.createServer({
      cert: t.cert,
      key: t.key,
      ...(t.ca ? { ca: t.ca } : {}),
      requestCert: t.requireClientCert || !!t.ca,
      rejectUnauthorized: t.requireClientCert,
      ALPNProtocols: ['h2'],
      handshakeTimeout: o.limits.handshakeTimeoutMs,
      minVersion: 'TLSv1.2',
    });
    // Count and cap before the handshake: a handshake costs CPU. The peer is remembered here because a
    // TLSSocket destroyed by a failed handshake no longer knows its address.
    const peers = new WeakMap<net.Socket, string>();
    ts.on('connection', (socket: net.Socket) => {
      const key = admitSocket(socket);
      if (key) peers.set(socket, key);
    });
    ts.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
      // With TLS 1.3 the client's certificate is verified after the handshake: Node then destroys the
      // socket and reports a bare "socket hang up"; the verification's own code is on the socket.
      const verify = socket.authorizationError;
      const { reason, detail } = tlsReason(verify ? Object.assign(new Error(String(verify)), { code: String(verify) }) : err);
      // `_parent`: the TCP socket under a server-side TLSSocket (Node internal, stable since v0.11).
      const raw = (socket as tls.TLSSocket & { _parent?: net.Socket })._parent;
      // Connected and closed without a byte: a kubelet tcpSocket probe (the chart's), a load balancer's
      // health check. Not a refusal: logging it every 10 s would bury the real ones.
      if (raw && raw.bytesRead === 0 && err.code === 'ECONNRESET' && !socket.authorizationError) return;
      const peer = (raw && peers.get(raw)) ?? (socket.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort}` : 'unknown');
      o.refusals.record(peer, reason, detail);
    });
    ts.on('secureConnection', (socket: tls.TLSSocket) => {
      const key = `${socket.remoteAddress}:${socket.remotePort}`;
      const cert = socket.authorized ? socket.getPeerCertificate() : undefined;
      identities.set(key, { certIdentities: certIdentities(cert) });
      injector.injectConnection(socket);
    });
    server = ts;
  } else {
    server = net.createServer((socket) => {
      if (admitSocket(socket)) injector.injectConnection(socket);
    });
  }

  const hp = parseHostPort(o.address);
  if (!hp) throw new Error(`listen: "${o.address}" is not host:port`);
  const { host, port } = hp;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => {});

  const closeSocket = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return {
    port: (server.address() as net.AddressInfo).port,
    peerCredentials: (peer) => identities.get(peer.replace(/^ipv[46]:/, '')),
    connections: () => open,
    async shutdown() {
      const closed = closeSocket();
      await new Promise<void>((resolve) => grpc.tryShutdown(() => resolve()));
      injector.destroy();
      await closed;
    },
    forceShutdown() {
      void closeSocket();
      grpc.forceShutdown();
      injector.destroy();
      for (const s of sockets) s.destroy();
    },
  };
}

/** The TLS files as bytes (serverCredentials() has already checked them and reported every problem by key). */
export async function readTlsMaterial(config: {
  insecure: boolean;
  tls?: { cert: string; key: string; clientCa?: string; requireClientCert: boolean };
}): Promise<TlsMaterial | undefined> {
  if (config.insecure || !config.tls) return undefined;
  const t = config.tls;
  const [cert, key, ca] = await Promise.all([readFile(t.cert), readFile(t.key), t.clientCa ? readFile(t.clientCa) : undefined]);
  return { cert, key, ca, requireClientCert: t.requireClientCert };
}
