import { collectDefaultMetrics, type Metric, type Registry } from 'prom-client';

/**
 * Metrics whose samples are read at scrape time, for prom-client registries
 * (the agent's and the collector's). The processes keep plain counters on
 * their hot paths; collect() turns them into samples only when Prometheus asks.
 */

export interface Sample {
  labels?: Record<string, string>;
  value: number | bigint;
}

export interface CollectorSpec {
  /** doorwatch_<area>_<what>[_total]; counters end in _total. */
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  labelNames?: readonly string[];
  /** The samples now; nothing (undefined) when the source is not there yet. */
  collect(): Iterable<Sample> | undefined;
}

/** One unlabelled sample (a boolean as 0/1), or nothing when there is no value yet. */
export function one(value: number | bigint | boolean | undefined): Sample[] | undefined {
  return value === undefined ? undefined : [{ value: typeof value === 'boolean' ? Number(value) : value }];
}

/** One sample per entry of `values`, the entry's key as label `label`, in the entries' order. */
export function byLabel(label: string, values: Readonly<Record<string, number | bigint>>): Sample[] {
  return Object.entries(values).map(([key, value]) => ({ labels: { [label]: key }, value }));
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * Register a metric that reports exactly what collect() returns: no stale
 * label sets and no made-up 0 when there is no source. Throws if the name is
 * taken or a name is not a valid Prometheus name.
 */
export function addScrapeMetric(registry: Registry, spec: CollectorSpec): void {
  if (!METRIC_NAME.test(spec.name)) throw new Error(`invalid metric name "${spec.name}"`);
  for (const l of spec.labelNames ?? []) if (!LABEL_NAME.test(l)) throw new Error(`invalid label name "${l}" of ${spec.name}`);
  const metric = {
    name: spec.name,
    help: spec.help,
    type: spec.type,
    aggregator: 'sum' as const,
    collect: undefined,
    async get() {
      const values = [];
      for (const x of spec.collect() ?? []) values.push({ labels: x.labels ?? {}, value: Number(x.value) });
      return { name: spec.name, help: spec.help, type: spec.type, aggregator: 'sum' as const, values };
    },
    reset() {},
  };
  // prom-client's registry needs only name, type and get() of a metric.
  registry.registerMetric(metric as unknown as Metric);
}

/**
 * prom-client's process_* and nodejs_* metrics, less the three gauges it also
 * exposes with a counter's `_total` suffix (nodejs_active_{handles,requests,resources}_total,
 * which `promtool check metrics` rejects): the same values stay as
 * nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
 */
export function addProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name);
  }
}
