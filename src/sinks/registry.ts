import { elasticsearchSink } from './elasticsearch.js';
import { jsonlSink } from './jsonl.js';
import { natsSink } from './nats.js';
import type { SinkFactory } from './sink.js';
import { splunkHecSink } from './splunk-hec.js';
import { syslogSink } from './syslog.js';

/** Every sink type the collector can be configured with, by its `type:` key. */
export const sinkRegistry: Record<string, SinkFactory> = Object.fromEntries(
  [jsonlSink, syslogSink, splunkHecSink, elasticsearchSink, natsSink].map((f) => [f.type, f as SinkFactory]),
);
