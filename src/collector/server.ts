import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { type ChannelOptions, ServerCredentials } from '@grpc/grpc-js';
import { ConfigError } from '../config/errors.js';
import { CollectorServiceDefinition, PublishRequest, SubscribeRequest } from '../gen/doorwatch/v1/collector.js';
import type { CollectorConfig } from './config.js';
import { DECODE_ERROR, type MaybeMalformed } from './publish.js';
import { decodePublishRequest } from './wire.js';

/**
 * The gRPC server's settings: TLS material checks, channel options and
 * tolerant request decoding. The socket itself (mutual TLS by default: a
 * client without a certificate signed by tls.clientCa fails the handshake and
 * no handler runs; plaintext only with `insecure: true`) is listener.ts's.
 * Message size is capped by maxMessageBytes: grpc-js answers
 * RESOURCE_EXHAUSTED itself.
 */

/** Every certificate in a PEM bundle, or a problem naming the key. */
function parseCerts(key: string, path: string, pem: Buffer, problems: string[], now: number): X509Certificate[] {
  const blocks = pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (!blocks.length) {
    problems.push(`tls.${key}: "${path}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    return [];
  }
  const certs: X509Certificate[] = [];
  for (const [i, b] of blocks.entries()) {
    try {
      certs.push(new X509Certificate(b));
    } catch (e) {
      problems.push(`tls.${key}: certificate ${i + 1} in "${path}" does not parse: ${(e as Error).message}`);
    }
  }
  const leaf = certs[0];
  if (key === 'cert' && leaf) {
    if (Date.parse(leaf.validTo) < now) problems.push(`tls.cert: "${path}" expired on ${leaf.validTo}`);
    if (Date.parse(leaf.validFrom) > now) problems.push(`tls.cert: "${path}" is not valid before ${leaf.validFrom}`);
  }
  return certs;
}

/**
 * Read and check the TLS files named by the config: unreadable files,
 * garbage, an expired certificate or a key that does not match are all
 * reported (by key) before anything listens. grpc-js would otherwise fail
 * late and vaguely, or, for a bad client CA, start and refuse every agent.
 */
export async function serverCredentials(config: CollectorConfig, source = 'collector config'): Promise<ServerCredentials> {
  if (config.insecure || !config.tls) return ServerCredentials.createInsecure();
  const tls = config.tls;
  const problems: string[] = [];
  const read = async (key: string, path: string | undefined) => {
    if (path === undefined) return null;
    try {
      return await readFile(path);
    } catch (e) {
      problems.push(`tls.${key}: cannot read "${path}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return null;
    }
  };
  const [cert, key, ca] = await Promise.all([read('cert', tls.cert), read('key', tls.key), read('clientCa', tls.clientCa)]);
  const now = Date.now();
  const chain = cert ? parseCerts('cert', tls.cert, cert, problems, now) : [];
  if (ca && tls.clientCa) parseCerts('clientCa', tls.clientCa, ca, problems, now);
  let privateKey: KeyObject | undefined;
  if (key) {
    try {
      privateKey = createPrivateKey(key);
    } catch (e) {
      problems.push(`tls.key: "${tls.key}" is not a PEM private key: ${(e as Error).message}`);
    }
  }
  if (chain[0] && privateKey && !chain[0].checkPrivateKey(privateKey)) {
    problems.push(`tls.key: "${tls.key}" is not the key of the certificate in "${tls.cert}"`);
  }
  if (problems.length || !cert || !key) throw new ConfigError(source, problems);
  try {
    return ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], tls.requireClientCert);
  } catch (e) {
    throw new ConfigError(source, [`tls: ${(e as Error).message}`]);
  }
}

/** Channel options for the server. */
export function serverOptions(config: CollectorConfig): ChannelOptions {
  return {
    'grpc.max_receive_message_length': config.maxMessageBytes,
    'grpc.max_send_message_length': config.maxMessageBytes,
    // Notice dead agents (half-open TCP) within about a minute.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 20_000,
    // Agents may ping every 10s even when idle.
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
  };
}

/**
 * Like `decode`, but a malformed message becomes a value flagged with
 * DECODE_ERROR instead of an exception: grpc-js would answer a throwing
 * deserializer with INTERNAL "Error deserializing request" (our bug, says the
 * code), while it is the client's: the handler answers INVALID_ARGUMENT.
 */
function tolerantDecode<T extends object>(decode: (b: Uint8Array) => T, empty: () => T) {
  return (bytes: Uint8Array): MaybeMalformed<T> => {
    try {
      return decode(bytes);
    } catch (e) {
      return Object.assign(empty(), { [DECODE_ERROR]: (e as Error).message });
    }
  };
}

/**
 * A Publish request whose bytes are decoded when it is first read, not when
 * it arrives: grpc-js deserializes each message as soon as its bytes are in,
 * and the stream's buffer and the Publish reader's back-pressure (the sinks'
 * read-ahead, dispatcher.ts) would keep those objects alive for as long as
 * the agents' window of batches waits. Read with the same tolerance: a
 * malformed request answers DECODE_ERROR on first read.
 */
class LazyPublishRequest {
  #bytes: Uint8Array | undefined;
  #decoded: MaybeMalformed<PublishRequest> | undefined;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  #value(): MaybeMalformed<PublishRequest> {
    if (this.#decoded === undefined) {
      this.#decoded = decodePublish(this.#bytes!);
      this.#bytes = undefined;
    }
    return this.#decoded;
  }

  get hello(): PublishRequest['hello'] {
    return this.#value().hello;
  }

  get batch(): PublishRequest['batch'] {
    return this.#value().batch;
  }

  get [DECODE_ERROR](): string | undefined {
    return this.#value()[DECODE_ERROR];
  }
}
const decodePublish = tolerantDecode(decodePublishRequest, () => PublishRequest.create());

/** CollectorServiceDefinition with tolerant, lazy request decoding (server side only). */
export const ServerCollectorServiceDefinition = {
  ...CollectorServiceDefinition,
  methods: {
    publish: {
      ...CollectorServiceDefinition.methods.publish,
      requestType: {
        ...PublishRequest,
        // wire.ts: equal to PublishRequest.decode (tested), a fraction of the work; shares per-pod parts.
        decode: (bytes: Uint8Array): MaybeMalformed<PublishRequest> => new LazyPublishRequest(bytes),
      } as typeof PublishRequest,
    },
    subscribe: {
      ...CollectorServiceDefinition.methods.subscribe,
      requestType: {
        ...SubscribeRequest,
        decode: tolerantDecode(
          (b) => SubscribeRequest.decode(b),
          () => SubscribeRequest.create(),
        ),
      } as typeof SubscribeRequest,
    },
  },
} as const;
