/**
 * What the Publish protocol (proto/doorwatch/v1/collector.proto) carries outside its messages, shared by
 * the agent and the collector.
 */

/**
 * The response header (gRPC initial metadata, value "1") by which a collector says it applies
 * EventBatch.contexts: only then does an agent send a pod's fields once per batch. A collector from
 * before contexts sends no such header and gets whole events.
 */
export const BATCH_CONTEXTS_HEADER = 'doorwatch-batch-contexts';
