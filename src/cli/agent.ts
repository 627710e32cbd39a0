import { readFileSync } from 'node:fs';
import { Publisher, type PublisherTls } from '../agent/publisher.js';
import { type OverflowPolicy, Spool } from '../agent/spool.js';
import { AcceptProbes } from '../bpf/accept-probes.js';
import { DoorwatchError } from '../errors.js';
import type { AcceptEvent } from '../gen/doorwatch/v1/event.js';
import type { Logger } from '../log/logger.js';
import { startKube, startPipeline } from './pipeline.js';
import type { TraceOptions } from './trace.js';

/**
 * `doorwatch agent`: capture -> enrich -> sequence -> spool -> collector.
 * The spool is written before anything is sent, so a collector outage or an
 * agent restart loses nothing the kernel delivered.
 */

export const AGENT_VERSION = '0.1.0';

export interface AgentOptions {
  collector: string;
  tls: { ca: string; cert?: string; key?: string; serverName?: string } | { insecure: true };
  spool: { dir: string; maxBytes: number; overflow: OverflowPolicy };
  batch: { maxEvents: number; maxDelayMs: number };
  nodeName: string;
  includeEagain: boolean;
  ringBytes: number;
  pollMs: number;
  pendingDeadlineMs: number;
  kube: TraceOptions['kube'];
  flushTimeoutMs: number;
}

export interface AgentIO {
  log: Logger;
  stopSignal: Promise<string>;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new DoorwatchError(
      'DW_ERR_CLI_USAGE',
      `cannot read the ${what} ${path}`,
      `check --${what} points at a readable PEM file`,
      {
        cause,
      },
    );
  }
}

export async function runAgent(o: AgentOptions, io: AgentIO): Promise<void> {
  const log = io.log;
  const tls: PublisherTls | { insecure: true } =
    'insecure' in o.tls
      ? { insecure: true }
      : {
          ca: readPem(o.tls.ca, 'ca'),
          cert: o.tls.cert ? readPem(o.tls.cert, 'cert') : undefined,
          key: o.tls.key ? readPem(o.tls.key, 'key') : undefined,
          serverName: o.tls.serverName,
        };
  if ('insecure' in tls) log.warn('sending events to the collector in plaintext (--insecure): use mutual TLS in production');

  const probes = AcceptProbes.load({ ringBytes: o.ringBytes, includeEagain: o.includeEagain, log });
  const spool = Spool.open({ dir: o.spool.dir, maxBytes: o.spool.maxBytes, overflow: o.spool.overflow, log });
  const identity = spool.identity;
  const publisher = new Publisher({
    target: o.collector,
    tls,
    identity: { nodeName: o.nodeName, version: AGENT_VERSION, ...identity },
    spool,
    batch: o.batch,
    log,
  });
  publisher.start();

  // seq is assigned after enrichment: held events would otherwise leave out of order.
  const sequence = (batch: AcceptEvent[]) => {
    let seq = spool.nextSeq();
    for (const ev of batch) {
      ev.seq = seq;
      ev.eventId = `${identity.bootId}/${identity.instanceId}/${seq}`;
      seq++;
    }
    publisher.publish(batch);
  };

  const kube = startKube({ kube: o.kube, nodeName: o.nodeName }, log);
  const { capture, stop } = startPipeline({
    probes,
    kube,
    nodeName: o.nodeName,
    pollMs: o.pollMs,
    pendingDeadlineMs: o.pendingDeadlineMs,
    emit: sequence,
    log,
  });

  // Losses upstream of the spool travel in the stream, as deltas.
  let last = { ring: 0n, decode: 0n, recursion: 0n };
  const reportLosses = () => {
    const s = capture.stats();
    const now = {
      ring: s.kernel.RINGBUF_FULL,
      decode: s.decodeErrors,
      recursion: s.programs.reduce((a, p) => a + p.recursionMisses, 0n),
    };
    publisher.reportLosses({
      kernelRingFull: now.ring - last.ring,
      decodeErrors: now.decode - last.decode,
      bpfRecursionMisses: now.recursion - last.recursion,
    });
    last = now;
  };
  const lossTimer = setInterval(reportLosses, 1000);
  const statusTimer = setInterval(() => {
    const p = publisher.status();
    log.info(
      {
        connected: p.connected,
        ackedSeq: String(p.ackedSeq),
        inFlight: p.inFlightBatches,
        spoolBytes: p.spoolBytes,
        lastError: p.lastError,
      },
      'agent status',
    );
  }, 30_000);
  log.info(
    { collector: o.collector, instance: identity.instanceId, firstSeq: String(spool.nextSeq()), kubernetes: kube.detail },
    'agent started: capturing accepts',
  );

  const why = await io.stopSignal;
  clearInterval(lossTimer);
  clearInterval(statusTimer);
  probes.detach();
  stop();
  reportLosses();
  const { flushed } = await publisher.close({ flushTimeoutMs: o.flushTimeoutMs });
  spool.close();
  probes.close();
  await kube.source?.stop();
  log.info(
    { reason: why, flushed, ackedSeq: String(spool.ackedSeq(identity)) },
    flushed ? 'agent stopped: all events acknowledged' : 'agent stopped: unacknowledged events stay in the spool',
  );
}
