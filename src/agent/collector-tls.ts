import { isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';
import type { ChannelOptions, VerifyOptions } from '@grpc/grpc-js';
import { parseHostPort } from '../config/host-port.js';

/**
 * Which name a gRPC client (the agent, `doorwatch tail`) verifies the collector's certificate against, as
 * grpc-js channel options and verify options.
 *
 * grpc-js 1.14 always passes the name it verifies as TLS ServerName (SNI) — the target's host, or
 * `grpc.ssl_target_name_override`. RFC 6066 forbids an IP address there: Node prints a DeprecationWarning
 * (DEP0123, a non-JSON line on stderr at every start) and is to refuse it in a later release. So when that
 * name is an IP address, SNI carries a reserved name (.invalid, RFC 2606: it can never be a real host) and
 * our checkServerIdentity verifies the certificate against the IP address itself (its IP SAN), exactly as
 * before: a certificate without that IP is still refused.
 */

/** The SNI sent when the collector is addressed by IP (no SNI at all is not possible through grpc-js). */
export const IP_TARGET_SNI = 'collector.doorwatch.invalid';

export interface CollectorTlsName {
  /** To merge into the channel's options. */
  channelOptions: ChannelOptions;
  /** To pass to ChannelCredentials.createSsl. */
  verifyOptions: VerifyOptions;
}

export function collectorTlsName(target: string, serverName?: string): CollectorTlsName {
  const name = serverName ?? parseHostPort(target)?.host;
  if (name !== undefined && isIP(name)) {
    return {
      channelOptions: { 'grpc.ssl_target_name_override': IP_TARGET_SNI },
      verifyOptions: { checkServerIdentity: (_sni, cert) => checkServerIdentity(name, cert) },
    };
  }
  if (serverName) {
    return {
      channelOptions: { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName },
      verifyOptions: {},
    };
  }
  return { channelOptions: {}, verifyOptions: {} };
}
