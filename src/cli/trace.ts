import { AcceptProbes } from '../bpf/accept-probes.js';
import { Capture, type CaptureStats } from '../capture/capture.js';
import { eventToJsonLine } from '../formats/native-json.js';
import type { AcceptEvent } from '../gen/doorwatch/v1/event.js';
import type { Logger } from '../log/logger.js';
import { tableHeader, tableRow } from './table.js';
import { compileFilter, type TraceFilter } from './trace-filter.js';

/** `doorwatch trace`: watch every accept on this host, live. */

export interface TraceOptions {
  output: 'table' | 'json';
  filter: TraceFilter;
  includeEagain: boolean;
  durationMs?: number;
  ringBytes: number;
  pollMs: number;
  nodeName: string;
}

export interface TraceIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  log: Logger;
  /** Resolves when the user asks to stop (SIGINT/SIGTERM). */
  stopSignal: Promise<string>;
}

export interface TraceResult {
  shown: number;
  captured: bigint;
  stats: CaptureStats;
}

export function formatSummary(shown: number, s: CaptureStats): string {
  const k = s.kernel;
  const recursion = s.programs.reduce((a, p) => a + p.recursionMisses, 0n);
  const lost = k.RINGBUF_FULL + s.decodeErrors + recursion;
  const lines = [
    `doorwatch trace: ${shown} shown of ${s.delivered} captured (${s.delivered - BigInt(shown)} filtered out by display filters)`,
    `  kernel: emitted=${k.EMITTED} exit_without_enter=${k.EXIT_NO_ENTER} eagain_skipped=${k.EAGAIN_SKIPPED} ` +
      `io_uring=${k.IO_URING} socket_unresolved=${k.SOCK_UNRESOLVED} enter_map_full=${k.ENTER_MAP_FULL} ` +
      `cgroup_filtered=${k.CGROUP_FILTERED}`,
    `  lost: ${lost} (ring_buffer_full=${k.RINGBUF_FULL} decode_errors=${s.decodeErrors} bpf_recursion_misses=${recursion})`,
  ];
  return `${lines.join('\n')}\n`;
}

export async function runTrace(o: TraceOptions, io: TraceIO): Promise<TraceResult> {
  const keep = compileFilter(o.filter);
  let shown = 0;
  let outputBroken = false;
  io.stdout.on('error', () => {
    outputBroken = true; // EPIPE (`| head`): stop writing, still shut down cleanly.
  });

  const probes = AcceptProbes.load({ ringBytes: o.ringBytes, includeEagain: o.includeEagain, log: io.log });
  if (o.output === 'table') io.stdout.write(`${tableHeader()}\n`);

  const onEvents = (batch: AcceptEvent[]) => {
    let out = '';
    for (const ev of batch) {
      if (!keep(ev)) continue;
      shown++;
      out += o.output === 'json' ? `${eventToJsonLine(ev)}\n` : `${tableRow(ev)}\n`;
    }
    if (out && !outputBroken) io.stdout.write(out);
  };
  const capture = new Capture({ probes, nodeName: o.nodeName, log: io.log, pollMs: o.pollMs, onEvents });
  capture.start();
  io.log.info({ ioUring: probes.ioUring, programs: probes.attachedPrograms() }, 'tracing accepts; Ctrl-C to stop');

  let timer: NodeJS.Timeout | undefined;
  const stops: Promise<string>[] = [io.stopSignal];
  if (o.durationMs !== undefined) {
    const ms = o.durationMs;
    stops.push(
      new Promise((r) => {
        timer = setTimeout(() => r('duration'), ms);
      }),
    );
  }
  const why = await Promise.race(stops);
  if (timer) clearTimeout(timer);

  // Detach first so nothing new arrives, then take what the ring still holds.
  probes.detach();
  capture.stop();
  const stats = capture.stats();
  probes.close();
  io.log.debug({ reason: why }, 'stopped');
  io.stderr.write(formatSummary(shown, stats));
  return { shown, captured: stats.delivered, stats };
}
