import { once } from 'node:events';
import { type Channel, ChannelCredentials, Client, Metadata, type ServiceError } from '@grpc/grpc-js';
import { ClientError, Status } from 'nice-grpc';
import { CollectorServiceDefinition, PublishRequest, PublishResponse } from '../gen/doorwatch/v1/collector.js';
import { BATCH_CONTEXTS_HEADER } from '../protocol.js';
import type { OutgoingRequest } from './wire.js';

/**
 * The Publish call on grpc-js directly. nice-grpc wraps every serialized
 * request in Buffer.from(), a copy of each batch the agent sends; its batches
 * are already bytes (live-batches.ts), handed here as they are. Errors come
 * out as nice-grpc ClientErrors, as from the rest of the client code.
 */

const PATH = `/${CollectorServiceDefinition.fullName}/${CollectorServiceDefinition.methods.publish.name}`;

const serialize = (req: OutgoingRequest): Buffer =>
  req instanceof Uint8Array
    ? Buffer.isBuffer(req)
      ? req
      : Buffer.from(req.buffer, req.byteOffset, req.byteLength)
    : Buffer.from(PublishRequest.encode(req).finish());

export async function* publishCall(
  channel: Channel,
  requests: AsyncIterable<OutgoingRequest>,
  o: {
    authorization?: string;
    signal: AbortSignal;
    /** The collector's response headers arrived: whether it applies EventBatch.contexts. */
    onHeaders?: (contexts: boolean) => void;
  },
): AsyncGenerator<PublishResponse, void> {
  const client = new Client('doorwatch-collector', ChannelCredentials.createInsecure(), { channelOverride: channel });
  const md = new Metadata();
  if (o.authorization) md.set('authorization', o.authorization);
  const call = client.makeBidiStreamRequest(PATH, serialize, (b: Buffer) => PublishResponse.decode(b), md, {});
  if (o.onHeaders) {
    const onHeaders = o.onHeaders;
    call.once('metadata', (md: Metadata) => onHeaders(md.get(BATCH_CONTEXTS_HEADER)[0] === '1'));
  }
  const cancel = () => call.cancel();
  if (o.signal.aborted) cancel();
  o.signal.addEventListener('abort', cancel);
  // Writer: the requests, with the stream's back-pressure.
  const writer = (async () => {
    try {
      for await (const req of requests) {
        if (!call.write(req)) await once(call, 'drain', { signal: o.signal });
      }
      call.end();
    } catch {
      // Aborted or the call failed: the reader reports it.
    }
  })();
  try {
    for await (const res of call as AsyncIterable<PublishResponse>) yield res;
  } catch (e) {
    const err = e as Partial<ServiceError>;
    if (o.signal.aborted) throw new ClientError(PATH, Status.CANCELLED, 'aborted');
    if (typeof err.code === 'number') throw new ClientError(PATH, err.code as number as Status, err.details ?? String(e));
    throw e;
  } finally {
    o.signal.removeEventListener('abort', cancel);
    call.cancel();
    void writer;
    // The channel is the caller's to close.
  }
}
