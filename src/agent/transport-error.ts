import { ClientError, Status } from 'nice-grpc';

/**
 * grpc-js reports every failed connection as "UNAVAILABLE: No connection
 * established. Last error: <openssl text>". An operator needs to know which
 * of the three usual suspects it is — collector down, our CA wrong, our
 * client certificate refused — and what to change: say that first, keep the
 * raw text after it.
 */
export function describeTransportError(err: unknown, target: string): string {
  const raw = rawText(err);
  const hint = (err instanceof ClientError ? AUTH_HINTS[err.code] : undefined) ?? hintFor(raw, target);
  const code = err instanceof ClientError ? `${Status[err.code] ?? err.code}: ` : '';
  return hint ? `${hint} [${code}${raw}]` : `${code}${raw}`;
}

function rawText(err: unknown): string {
  const text = err instanceof ClientError ? err.details : err instanceof Error ? err.message : String(err);
  return text
    .replace(/^No connection established\. Last error: /, '')
    .replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)/g, '')
    .replace(/\.?\s*Resolution note:\s*$/, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/** The collector's auth refusals (docs/security.md): by status, whatever the text. */
const AUTH_HINTS: Partial<Record<Status, string>> = {
  [Status.UNAUTHENTICATED]:
    'auth: the collector did not accept our token (is the projected token mounted at tokenFile, for the audience the collector expects?)',
  [Status.PERMISSION_DENIED]:
    "auth: the collector refused this agent's identity (does --node-name match the pod's node, and does the agent run as the ServiceAccount the collector expects?)",
};

const RULES: [RegExp, (target: string) => string][] = [
  [
    /self[- ]signed certificate|unable to verify|unable to get (local )?issuer|certificate verify failed|UNABLE_TO_VERIFY/i,
    () => "TLS: the collector's certificate is not signed by the configured CA (check tls.ca)",
  ],
  [
    /certificate has expired|CERT_HAS_EXPIRED|not yet valid/i,
    () => "TLS: the collector's certificate has expired or is not yet valid",
  ],
  [
    /does not match|ERR_TLS_CERT_ALTNAME|altnames/i,
    () => "TLS: the collector's certificate does not name this target (check tls.serverName or the certificate's SANs)",
  ],
  [
    /certificate required|alert number 116/i,
    () => 'TLS: the collector requires a client certificate and none was sent (set tls.cert and tls.key)',
  ],
  [
    /unknown ca|bad certificate|certificate unknown|alert number (42|46|48)/i,
    () => 'TLS: the collector rejected our client certificate (is it signed by a CA the collector trusts?)',
  ],
  [
    /wrong version number|packet length too long|http_request/i,
    () => 'TLS: the target does not speak TLS (or tls.insecure is set against a TLS collector)',
  ],
  [/ECONNREFUSED/, (t) => `collector unreachable: connection refused at ${t} (not running, or wrong port)`],
  [/ENOTFOUND|EAI_AGAIN|DNS resolution failed|Name resolution failed/i, (t) => `collector unreachable: cannot resolve ${t}`],
  [/ETIMEDOUT|EHOSTUNREACH|ENETUNREACH/, (t) => `collector unreachable: no route or timeout to ${t}`],
  [
    /^Failed to connect$|closed the connection during setup/,
    () =>
      'connection closed during setup: the collector may have rejected our client certificate (not signed by a CA it trusts), or it does not speak TLS',
  ],
];

function hintFor(raw: string, target: string): string | undefined {
  for (const [re, hint] of RULES) if (re.test(raw)) return hint(target);
  return undefined;
}
