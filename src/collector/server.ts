import { readFile } from 'node:fs/promises';
import { type ChannelOptions, ServerCredentials } from '@grpc/grpc-js';
import { createServer, type Server } from 'nice-grpc';
import { ConfigError } from '../config/errors.js';
import { CollectorServiceDefinition, PublishRequest, SubscribeRequest } from '../gen/doorwatch/v1/collector.js';
import type { CollectorConfig } from './config.js';
import { DECODE_ERROR, type MaybeMalformed } from './publish.js';

/**
 * The gRPC server: mutual TLS by default (the agent must present a
 * certificate signed by tls.clientCa; without one the TLS handshake fails and
 * no handler runs), plaintext only with `insecure: true`. Message size is
 * capped by maxMessageBytes: grpc-js answers RESOURCE_EXHAUSTED itself.
 */

/** Read the TLS files named by the config; every unreadable file is reported, by key. */
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

/** CollectorServiceDefinition with tolerant request decoding (server side only). */
export const ServerCollectorServiceDefinition = {
  ...CollectorServiceDefinition,
  methods: {
    publish: {
      ...CollectorServiceDefinition.methods.publish,
      requestType: {
        ...PublishRequest,
        decode: tolerantDecode(
          (b) => PublishRequest.decode(b),
          () => PublishRequest.create(),
        ),
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

export function createCollectorServer(config: CollectorConfig): Server {
  return createServer(serverOptions(config));
}
