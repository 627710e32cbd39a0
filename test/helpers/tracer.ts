import { AcceptProbes } from '../../src/bpf/accept-probes.js';
import { Capture } from '../../src/capture/capture.js';
import type { AcceptEvent } from '../../src/gen/doorwatch/v1/event.js';
import { silentLogger } from '../../src/log/logger.js';
import { until } from './wait.js';

/**
 * The real probes, loaded in the test process, collecting every event.
 * Kernel tests need root: they fail loudly (never skip) without it.
 */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('kernel tests load eBPF programs and must run as root (sudo npm test); refusing to skip them');
  }
}

export interface Tracer {
  events: AcceptEvent[];
  probes: AcceptProbes;
  capture: Capture;
  /** Resolves with the matching events once `count` of them arrived, or rejects after timeoutMs. */
  waitFor(pred: (e: AcceptEvent) => boolean, count?: number, timeoutMs?: number): Promise<AcceptEvent[]>;
  stop(): void;
}

export interface TracerOptions {
  includeEagain?: boolean;
  ringBytes?: number;
  /** A stage between capture and `events` (e.g. the enricher): given the final sink, returns the capture consumer. */
  through?: (sink: (batch: AcceptEvent[]) => void) => (batch: AcceptEvent[]) => void;
}

export function startTracer(opts: TracerOptions = {}): Tracer {
  requireRoot();
  const events: AcceptEvent[] = [];
  const probes = AcceptProbes.load({
    ringBytes: opts.ringBytes ?? 8 << 20,
    includeEagain: opts.includeEagain ?? false,
    log: silentLogger,
  });
  const sink = (b: AcceptEvent[]) => {
    events.push(...b);
  };
  const onEvents = opts.through ? opts.through(sink) : sink;
  const capture = new Capture({ probes, nodeName: 'test-node', log: silentLogger, pollMs: 5, onEvents });
  capture.start();
  let stopped = false;
  return {
    events,
    probes,
    capture,
    async waitFor(pred, count = 1, timeoutMs = 5000) {
      let got: AcceptEvent[] = [];
      const enough = () => {
        capture.drain();
        got = events.filter(pred);
        return got.length >= count ? got : undefined;
      };
      try {
        return await until(enough, `${count} matching events`, timeoutMs);
      } catch (err) {
        throw new Error(`${(err as Error).message} (have ${got.length}, ${events.length} total)`);
      }
    },
    stop() {
      if (stopped) return;
      stopped = true;
      probes.detach();
      capture.stop();
      probes.close();
    },
  };
}

/** Events of one process. */
export const byPid = (pid: number) => (e: AcceptEvent) => e.process?.pid === pid;
