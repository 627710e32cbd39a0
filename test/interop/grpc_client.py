#!/usr/bin/env python3
"""An independent gRPC peer for Doorwatch's collector: python3-grpcio (Debian),
messages built at run time from the FileDescriptorSet that `buf build` makes
from proto/ (no generated code, no shared runtime with the TypeScript side).

usage: grpc_client.py publish|subscribe DESCRIPTORS TARGET CA CERT KEY [N]
Prints one JSON line per result on stdout.
"""
import json
import sys
import threading

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory


def load(descriptors):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(descriptors, "rb") as f:
        fds.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fd in fds.file:
        pool.Add(fd)
    factory = message_factory.MessageFactory(pool)
    return lambda name: factory.GetPrototype(pool.FindMessageTypeByName(name))


def channel(target, ca, cert, key):
    creds = grpc.ssl_channel_credentials(
        root_certificates=open(ca, "rb").read(),
        private_key=open(key, "rb").read(),
        certificate_chain=open(cert, "rb").read(),
    )
    return grpc.secure_channel(target, creds, options=[("grpc.ssl_target_name_override", "localhost")])


def method(ch, kind, name, resp):
    """A CollectorService method as a callable: kind is "stream_stream" or "unary_stream"."""
    return getattr(ch, kind)(
        "/doorwatch.v1.CollectorService/" + name,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=resp.FromString,
    )


def main():
    mode, descriptors, target, ca, cert, key = sys.argv[1:7]
    n = int(sys.argv[7]) if len(sys.argv) > 7 else 3
    msg = load(descriptors)
    ch = channel(target, ca, cert, key)
    if mode in ("publish", "publish-contexts"):
        # publish-contexts: the pod's fields once, in EventBatch.contexts, once the collector's response
        # headers said it applies them (doorwatch-batch-contexts: 1).
        with_contexts = mode == "publish-contexts"
        instance = "py-instance-ctx" if with_contexts else "py-instance"
        Req = msg("doorwatch.v1.PublishRequest")
        publish = method(ch, "stream_stream", "Publish", msg("doorwatch.v1.PublishResponse"))
        done = threading.Event()
        headers = threading.Event()

        def requests():
            hello = Req()
            hello.hello.agent.node_name = "py-node"
            hello.hello.agent.boot_id = "py-boot"
            hello.hello.agent.instance_id = instance
            hello.hello.agent.version = "python-interop"
            yield hello
            if with_contexts:
                headers.wait(20)
            batch = Req()
            batch.batch.first_seq = 1
            if with_contexts:
                ctx = batch.batch.contexts.add()
                ctx.pod.namespace = "interop"
                ctx.pod.name = "py-pod-ctx"
                ctx.container.name = "py-container"
            for i in range(1, n + 1):
                ev = batch.batch.events.add()
                ev.seq = i
                ev.event_id = "py-boot/%s/%d" % (instance, i)
                ev.node_name = "py-node"
                ev.source = 2  # SOURCE_ACCEPT4
                ev.success = True
                ev.ret = 3 + i
                ev.process.pid = 4242
                ev.process.comm = "python-peer"
                ev.socket.resolved = True
                ev.socket.family = 1
                ev.socket.local.ip = "10.9.0.1"
                ev.socket.local.port = 8443
                ev.socket.peer.ip = "10.9.0.%d" % (100 + i)
                ev.socket.peer.port = 40000 + i
                if with_contexts:
                    batch.batch.event_contexts.append(1)
                else:
                    ev.pod.namespace = "interop"
                    ev.pod.name = "py-pod"
            yield batch
            # Keep the stream open until the ack covers everything.
            done.wait(20)

        acked = 0
        call = publish(requests(), timeout=20)
        announced = dict(call.initial_metadata()).get("doorwatch-batch-contexts")
        headers.set()
        for resp in call:
            acked = resp.acked_seq
            if acked >= n:
                done.set()
                break
        out = {"acked_seq": acked}
        if with_contexts:
            out["batch_contexts_header"] = announced
        print(json.dumps(out), flush=True)
    elif mode == "subscribe":
        subscribe = method(ch, "unary_stream", "Subscribe", msg("doorwatch.v1.SubscribeResponse"))
        req = msg("doorwatch.v1.SubscribeRequest")()
        req.filter.namespaces.append("interop")
        req.filter.ports.append(8443)
        print(json.dumps({"subscribed": True}), flush=True)
        got = 0
        for resp in subscribe(req, timeout=20):
            if resp.HasField("event"):
                print(json.dumps({"event": json_format.MessageToDict(resp.event)}), flush=True)
                got += 1
                if got >= n:
                    break
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
