import { randomBytes } from 'node:crypto';
import { readBootId } from '../capture/clock.js';
import { CgroupResolver } from '../enrich/cgroup/resolver.js';
import { Enricher } from '../enrich/enricher.js';
import { eventToJsonLine } from '../formats/native-json.js';
import { type AcceptEvent, ListenerOrigin } from '../gen/doorwatch/v1/event.js';
import { scanListeners } from '../listeners/proc-scan.js';
import { scannedEvent } from '../listeners/scan-event.js';
import { byAddress, listenersHeader, listenersRow } from '../listeners/table.js';
import type { Logger } from '../log/logger.js';
import { startKube } from './pipeline.js';
import type { TraceOptions } from './trace.js';

/**
 * `doorwatch listeners`: this node's listening TCP and unix sockets, from a
 * /proc scan (no probes, no collector), attributed as the agent attributes
 * accepts (cgroup -> container -> pod through the Kubernetes API when there
 * is one). The agent sends the same inventory as records (docs/events.md).
 */

export interface ListenersOptions {
  output: 'table' | 'json';
  nodeName: string;
  kube: TraceOptions['kube'];
  pendingDeadlineMs: number;
}

export interface ListenersIO {
  write(text: string): void;
  log: Logger;
}

export async function runListeners(o: ListenersOptions, io: ListenersIO): Promise<AcceptEvent[]> {
  const kube = await startKube(o, io.log);
  const cgroups = new CgroupResolver({ log: io.log });
  cgroups.rescan();
  const out: AcceptEvent[] = [];
  const enricher = new Enricher({
    cgroups,
    kube: kube.source,
    kubeDisabledReason: kube.reason,
    pendingDeadlineMs: o.pendingDeadlineMs,
    emit: (b) => {
      out.push(...b);
    },
    log: io.log,
  });
  enricher.start();
  try {
    const scan = await scanListeners();
    if (scan.unreadable) io.log.debug({ unreadable: scan.unreadable }, 'processes gone or unreadable during the scan');
    const now = BigInt(Date.now()) * 1_000_000n;
    const prefix = `${readBootId()}/${randomBytes(6).toString('hex')}`;
    const batch = scan.listeners.map((s, i) => {
      const ev = scannedEvent(s, {
        nodeName: o.nodeName,
        origin: ListenerOrigin.LISTENER_ORIGIN_SNAPSHOT,
        timeUnixNano: now,
        firstSeenUnixNano: now,
      });
      ev.seq = BigInt(i + 1);
      ev.eventId = `${prefix}/${i + 1}`;
      return ev;
    });
    enricher.process(batch);
    // Held records wait for their pod at most pendingDeadline; then they go out partial.
    const deadline = Date.now() + o.pendingDeadlineMs + 1000;
    while (out.length < batch.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  } finally {
    enricher.stop();
    await kube.source?.stop();
  }
  out.sort(byAddress);
  if (o.output === 'json') for (const ev of out) io.write(`${eventToJsonLine(ev)}\n`);
  else io.write(`${[listenersHeader(), ...out.map(listenersRow)].join('\n')}\n`);
  return out;
}
