import { readFileSync } from 'node:fs';
import { ChannelCredentials } from '@grpc/grpc-js';
import { ClientError, createChannel, createClient, Metadata, Status } from 'nice-grpc';
import { collectorTlsName } from '../agent/collector-tls.js';
import { compileSubscribeFilter, FilterError } from '../collector/subscribe.js';
import { parseHostPort } from '../config/host-port.js';
import { DoorwatchError } from '../errors.js';
import { eventToJsonLine, lossToJson } from '../formats/native-json.js';
import { eventToTraceeLine, lossToTraceeLine } from '../formats/tracee.js';
import { CollectorServiceDefinition, type LossRecord, type SubscribeFilter } from '../gen/doorwatch/v1/collector.js';
import { loadKubeConfig } from '../kube/config.js';
import type { Logger } from '../log/logger.js';
import { readPem } from './pem.js';
import { tableHeader, tableRow } from './table.js';
import { TailConnectError } from './tail-error.js';

/**
 * `doorwatch tail --server collector:7443`: live events (and loss records)
 * from a collector's Subscribe stream, as JSON lines or a table. Best effort:
 * a slow reader is told how many events it missed ("subscriber too slow").
 */

export interface TailFilter {
  namespaces?: string[];
  pods?: string[];
  nodes?: string[];
  ports?: number[];
  /** IPs or CIDRs. */
  peers?: string[];
  /** The peer pod's or Service's namespace (peer attribution, at the collector). */
  peerNamespaces?: string[];
  /** The peer pod's workload: "web" or "Deployment/web". */
  peerWorkloads?: string[];
}

export interface TailOptions {
  /** host:port of the collector. */
  server: string;
  /** CA bundle the collector's certificate chains to (PEM file); default: the system roots. */
  ca?: string;
  /** Client certificate and key (PEM files), when the collector requires one. */
  cert?: string;
  key?: string;
  /** Plaintext gRPC (a collector with `insecure: true`). */
  insecure?: boolean;
  /** A bearer token file for the collector (e.g. from `kubectl create token`); default: the kubeconfig user's token. */
  tokenFile?: string;
  /** The kubeconfig whose current user's token is sent (default $KUBECONFIG, ~/.kube/config, or in-cluster). */
  kubeconfig?: string;
  /** The environment the kubeconfig loader reads (the cli passes process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  filter: TailFilter;
  output: 'table' | 'json' | 'tracee';
  durationMs?: number;
}

export interface TailIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  log: Logger;
  stopSignal: Promise<string>;
}

export interface TailResult {
  events: number;
  losses: number;
}

export { TailConnectError };

const usage = (message: string, hint: string) => new DoorwatchError('DW_ERR_CLI_USAGE', message, hint);

function credentials(o: TailOptions): ChannelCredentials {
  if (o.insecure) {
    if (o.ca || o.cert || o.key)
      throw usage('--insecure cannot be combined with --ca, --cert or --key', 'drop --insecure to use TLS');
    return ChannelCredentials.createInsecure();
  }
  if (!!o.cert !== !!o.key) throw usage('--cert and --key go together', 'give both the client certificate and its key');
  return ChannelCredentials.createSsl(
    o.ca ? readPem(o.ca, '--ca') : null,
    o.key ? readPem(o.key, '--key') : null,
    o.cert ? readPem(o.cert, '--cert') : null,
    collectorTlsName(o.server).verifyOptions,
  );
}

function toFilter(f: TailFilter): SubscribeFilter {
  const filter: SubscribeFilter = {
    namespaces: f.namespaces ?? [],
    pods: f.pods ?? [],
    nodes: f.nodes ?? [],
    ports: f.ports ?? [],
    peers: f.peers ?? [],
    peerNamespaces: f.peerNamespaces ?? [],
    peerWorkloads: f.peerWorkloads ?? [],
  };
  try {
    compileSubscribeFilter(filter); // the server checks too; fail before connecting
  } catch (e) {
    if (e instanceof FilterError)
      throw usage(e.message.replace(/^filter\.peers\[\d+\]/, '--peer'), 'use an IP or a CIDR such as 10.0.0.0/8');
    throw e;
  }
  return filter;
}

export function lossTableLine(l: LossRecord): string {
  const who = l.agent ? ` from ${l.agent.nodeName || '?'} (${l.agent.instanceId}/${l.agent.bootId})` : '';
  const range = l.fromSeq || l.toSeq ? ` seq ${l.fromSeq}-${l.toSeq}` : '';
  const c = l.counters;
  const counts = c
    ? Object.entries(c)
        .filter(([, v]) => v !== 0n)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')
    : '';
  return `!! LOST${who}${range}: ${l.reason}${counts ? ` (${counts})` : ''}`;
}

function connectError(server: string, e: ClientError): TailConnectError {
  const why = e.details.replace(/\s+/g, ' ').trim();
  const hint: Partial<Record<Status, string>> = {
    [Status.UNAVAILABLE]:
      'check --server, that the collector runs, and that --ca/--cert/--key match its TLS setup (or --insecure for a plaintext collector)',
    [Status.INVALID_ARGUMENT]: 'fix the filter flags',
    [Status.RESOURCE_EXHAUSTED]: 'too many subscribers: try later or raise subscribers.max on the collector',
    [Status.UNAUTHENTICATED]:
      'the collector needs a bearer token it can verify: --token-file (e.g. from `kubectl create token`) or a kubeconfig user with a token',
    [Status.PERMISSION_DENIED]:
      'ask for namespaces you may watch (--namespace; RBAC: verb watch on acceptevents.doorwatch.io), or get the doorwatch-viewer ClusterRole for all',
  };
  return new TailConnectError(
    `cannot subscribe to the collector at ${server}: ${Status[e.code]}: ${why} — ${hint[e.code] ?? 'see the collector logs'}`,
    e.code,
    { cause: e },
  );
}

/**
 * The `authorization` metadata: --token-file, else the kubeconfig user's
 * token. Never over plaintext: a Kubernetes token sent in clear is a stolen
 * token, so with --insecure only an explicit --token-file is refused and the
 * kubeconfig is not consulted.
 */
async function authorization(o: TailOptions, log: Logger): Promise<string | undefined> {
  if (o.tokenFile) {
    if (o.insecure) throw usage('--token-file cannot be combined with --insecure', 'a token is never sent in plaintext: use TLS');
    let token: string;
    try {
      token = readFileSync(o.tokenFile, 'utf8').trim();
    } catch (e) {
      throw usage(
        `--token-file "${o.tokenFile}" cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        'give a readable file holding the token',
      );
    }
    if (!token) throw usage(`--token-file "${o.tokenFile}" is empty`, 'e.g. kubectl create token <serviceaccount> > token');
    return `Bearer ${token}`;
  }
  if (o.insecure) return undefined;
  const loaded = await loadKubeConfig({ env: o.env ?? {}, ...(o.kubeconfig ? { kubeconfigPath: o.kubeconfig } : {}) });
  const user = loaded.kubeConfig?.getCurrentUser();
  const token = user?.token;
  if (!token) {
    log.debug({ kubeconfig: loaded.kubeConfig ? 'no token for the current user' : loaded.reason }, 'no bearer token to send');
    return undefined;
  }
  return `Bearer ${token}`;
}

export async function runTail(o: TailOptions, io: TailIO): Promise<TailResult> {
  if (!parseHostPort(o.server)) throw usage(`--server "${o.server}" is not host:port`, 'e.g. --server doorwatch-collector:7443');
  const creds = credentials(o);
  const auth = await authorization(o, io.log);
  const filter = toFilter(o.filter);
  // An IP address is verified as such, never sent as TLS ServerName (agent/collector-tls.ts).
  const channel = createChannel(o.server, creds, o.insecure ? {} : collectorTlsName(o.server).channelOptions);
  const client = createClient(CollectorServiceDefinition, channel);
  const ac = new AbortController();
  const result: TailResult = { events: 0, losses: 0 };
  let outputBroken = false;
  const onOutputError = () => {
    outputBroken = true; // EPIPE (`| head`): stop cleanly.
    ac.abort();
  };
  io.stdout.on('error', onOutputError);
  const timer = o.durationMs ? setTimeout(() => ac.abort(), o.durationMs) : undefined;
  void io.stopSignal.then(() => ac.abort());
  const write = (line: string) => {
    if (!outputBroken) io.stdout.write(`${line}\n`);
  };
  try {
    if (o.output === 'table') write(tableHeader(true));
    const metadata = auth ? { metadata: Metadata({ authorization: auth }) } : {};
    for await (const item of client.subscribe({ filter }, { ...metadata, signal: ac.signal })) {
      if (item.event) {
        result.events++;
        write(
          o.output === 'json'
            ? eventToJsonLine(item.event)
            : o.output === 'tracee'
              ? eventToTraceeLine(item.event)
              : tableRow(item.event, true),
        );
      } else if (item.loss) {
        result.losses++;
        write(
          o.output === 'json'
            ? JSON.stringify({ loss: lossToJson(item.loss) })
            : o.output === 'tracee'
              ? lossToTraceeLine(item.loss)
              : lossTableLine(item.loss),
        );
      }
    }
    io.log.info('the collector ended the subscription');
  } catch (e) {
    // Our own abort (signal, --duration, broken stdout) ends the stream: not an error.
    if (!ac.signal.aborted) {
      if (e instanceof ClientError) throw connectError(o.server, e);
      throw e;
    }
  } finally {
    clearTimeout(timer);
    io.stdout.off('error', onOutputError);
    channel.close();
  }
  io.stderr.write(`doorwatch tail: ${result.events} events, ${result.losses} loss records\n`);
  return result;
}
