import { startCollector } from '../collector/collector.js';
import { loadCollectorConfig, parseHealthAddress, type SinkRegistry } from '../collector/config.js';
import { DoorwatchError } from '../errors.js';
import type { Logger, LogLevel } from '../log/logger.js';

/**
 * `doorwatch collector --config collector.yaml`: load and validate the config
 * (a ConfigError lists every problem; the caller maps it to exit 2), start the
 * server and sinks, run until the stop signal, then stop gracefully (drain
 * the sink queues, last acks, close the sinks).
 */

export interface CollectorOptions {
  configPath: string;
  logLevel: LogLevel;
  /** --health-address: replaces the config's health.address. */
  healthAddress?: string;
}

export interface CollectorIO {
  log: Logger;
  /** Resolves when the user asks to stop (SIGINT/SIGTERM), with the signal's name. */
  stopSignal: Promise<string>;
  registry: SinkRegistry;
}

export async function runCollector(opts: CollectorOptions, io: CollectorIO): Promise<void> {
  const log = io.log.child({ cmd: 'collector' });
  log.level = opts.logLevel;
  const config = await loadCollectorConfig(opts.configPath, io.registry);
  if (opts.healthAddress !== undefined) {
    try {
      config.health = { address: parseHealthAddress(opts.healthAddress) };
    } catch (e) {
      throw new DoorwatchError('DW_ERR_CLI_USAGE', `--health-address: ${(e as Error).message}`, 'see doorwatch collector --help');
    }
  }
  const collector = await startCollector(config, { registry: io.registry, log, source: opts.configPath, env: process.env });
  const host = config.listen.slice(0, config.listen.lastIndexOf(':'));
  log.info(
    {
      listen: `${host}:${collector.port}`,
      health: collector.healthAddress ? `${collector.healthAddress.host}:${collector.healthAddress.port}` : 'off',
      tls: config.insecure ? 'none (insecure: plaintext)' : config.tls?.requireClientCert ? 'mutual' : 'server-only',
      sinks: config.sinks.map((s) => `${s.name} (${s.type}${s.required ? ', required' : ''})`),
    },
    'collector listening',
  );
  const signal = await io.stopSignal;
  log.info({ signal }, 'stopping');
  await collector.stop();
  const s = collector.stats();
  log.info(
    {
      accepted: s.accepted,
      duplicates: s.duplicates,
      gaps: s.gaps,
      refusals: Object.fromEntries(Object.entries(s.refusals).filter(([, n]) => n > 0)),
      auth: s.auth,
      sinks: s.sinks.map((x) => ({ name: x.name, written: x.written, dropped: x.dropped, queued: x.queued + x.inFlight })),
    },
    'collector stopped',
  );
}
