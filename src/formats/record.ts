import type { LossRecord } from '../gen/doorwatch/v1/collector.js';
import type { AcceptEvent } from '../gen/doorwatch/v1/event.js';

/**
 * What the collector formats and hands to sinks: events, and loss records
 * (losses are never silent). Declared here, upstream of the sinks, so formats
 * never import from the sinks they serve.
 */
export type SinkRecord = { kind: 'event'; event: AcceptEvent } | { kind: 'loss'; loss: LossRecord };

/** The record formats (docs/formats.md); a sink's `format:` key takes one of these. */
export const FORMATS = ['native', 'ocsf', 'ecs', 'tracee'] as const;
export type FormatName = (typeof FORMATS)[number];
