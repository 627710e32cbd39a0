import { ChannelCredentials } from '@grpc/grpc-js';
import { ClientError, createChannel, createClient, Status } from 'nice-grpc';
import { compileSubscribeFilter, FilterError } from '../collector/subscribe.js';
import { parseHostPort } from '../config/host-port.js';
import { DoorwatchError } from '../errors.js';
import { eventToJsonLine, lossToJson } from '../formats/native-json.js';
import { CollectorServiceDefinition, type LossRecord, type SubscribeFilter } from '../gen/doorwatch/v1/collector.js';
import type { Logger } from '../log/logger.js';
import { readPem } from './pem.js';
import { tableHeader, tableRow } from './table.js';

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
  filter: TailFilter;
  output: 'table' | 'json';
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

/**
 * The collector could not be reached or refused the subscription
 * (DW_ERR_TAIL_CONNECT): one line that carries the gRPC status and the fix,
 * which main() prints with the code.
 */
export class TailConnectError extends Error {
  readonly status: Status | undefined;
  constructor(message: string, status?: Status, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TailConnectError';
    this.status = status;
  }
}

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
  );
}

function toFilter(f: TailFilter): SubscribeFilter {
  const filter: SubscribeFilter = {
    namespaces: f.namespaces ?? [],
    pods: f.pods ?? [],
    nodes: f.nodes ?? [],
    ports: f.ports ?? [],
    peers: f.peers ?? [],
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
    [Status.UNAUTHENTICATED]: 'present a client certificate the collector trusts (--cert, --key)',
  };
  return new TailConnectError(
    `cannot subscribe to the collector at ${server}: ${Status[e.code]}: ${why} — ${hint[e.code] ?? 'see the collector logs'}`,
    e.code,
    { cause: e },
  );
}

export async function runTail(o: TailOptions, io: TailIO): Promise<TailResult> {
  if (!parseHostPort(o.server)) throw usage(`--server "${o.server}" is not host:port`, 'e.g. --server doorwatch-collector:7443');
  const creds = credentials(o);
  const filter = toFilter(o.filter);
  const channel = createChannel(o.server, creds);
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
    for await (const item of client.subscribe({ filter }, { signal: ac.signal })) {
      if (item.event) {
        result.events++;
        write(o.output === 'json' ? eventToJsonLine(item.event) : tableRow(item.event, true));
      } else if (item.loss) {
        result.losses++;
        write(o.output === 'json' ? JSON.stringify({ loss: lossToJson(item.loss) }) : lossTableLine(item.loss));
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
