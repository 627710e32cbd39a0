#!/usr/bin/env python3
"""A hostile gRPC client for Doorwatch's collector: python3-grpcio (Debian), messages
built at run time from `buf build`'s FileDescriptorSet (no generated code, nothing
shared with the TypeScript side), each case one Publish stream that a correct
collector must refuse with a clear status.

usage: hostile_client.py CASE DESCRIPTORS TARGET CA CERT KEY NODE [TOKEN]
(NODE: the node the credential is bound to; TOKEN: sent as "authorization: Bearer TOKEN")
Prints one JSON line: {"case", "code", "details", "acked"}.
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def load(descriptors):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(descriptors, "rb") as f:
        fds.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fd in fds.file:
        pool.Add(fd)
    factory = message_factory.MessageFactory(pool)
    return lambda name: factory.GetPrototype(pool.FindMessageTypeByName(name))


NODE = "node-a"  # replaced from argv


def hello(Req, node=None, instance="hostile-instance"):
    r = Req()
    r.hello.agent.node_name = node or NODE
    r.hello.agent.boot_id = "hostile-boot"
    r.hello.agent.instance_id = instance
    r.hello.agent.version = "hostile"
    return r


def batch(Req, first, seqs, node=None, comm="hostile"):
    r = Req()
    r.batch.first_seq = first
    for s in seqs:
        ev = r.batch.events.add()
        ev.seq = s
        ev.node_name = node or NODE
        ev.process.comm = comm
    return r


def frames(case, Req):
    """The requests of each case; bytes are sent as-is."""
    if case == "duplicate-hello":
        return [hello(Req), hello(Req)]
    if case == "seq-backwards":
        return [hello(Req), batch(Req, 5, [5, 4, 3])]
    if case == "seq-wrap":
        return [hello(Req), batch(Req, 2**64 - 1, [2**64 - 1, 0])]
    if case == "million-events":
        # ~14 MB: under maxMessageBytes, so only the event limit stops it.
        r = Req()
        r.batch.first_seq = 1
        evs = r.batch.events
        for s in range(1, 1_000_001):
            evs.add(seq=s, node_name=NODE)
        return [hello(Req), r]
    if case == "huge-string":
        return [hello(Req), batch(Req, 1, [1, 2], comm="x" * (4 * 1024 * 1024))]
    if case == "garbage":
        return [hello(Req), b"\xff\xff\xff\xff\x0f\x12garbage"]
    if case == "oversized":
        return [hello(Req), batch(Req, 1, [1], comm="y" * (20 * 1024 * 1024))]
    if case == "other-node":
        return [hello(Req, node="victim-node", instance="victim-instance")]
    if case == "valid":
        return [hello(Req), batch(Req, 1, [1, 2, 3])]
    sys.exit("unknown case " + case)


def main():
    global NODE
    case, descriptors, target, ca, cert, key, NODE = sys.argv[1:8]
    token = sys.argv[8] if len(sys.argv) > 8 else ""
    msg = load(descriptors)
    Req = msg("doorwatch.v1.PublishRequest")
    Resp = msg("doorwatch.v1.PublishResponse")
    # CERT "-": no client certificate at all.
    creds = grpc.ssl_channel_credentials(
        root_certificates=open(ca, "rb").read(),
        private_key=None if cert == "-" else open(key, "rb").read(),
        certificate_chain=None if cert == "-" else open(cert, "rb").read(),
    )
    opts = [
        ("grpc.ssl_target_name_override", "localhost"),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ]
    ch = grpc.secure_channel(target, creds, options=opts)
    publish = ch.stream_stream(
        "/doorwatch.v1.CollectorService/Publish",
        request_serializer=lambda m: m if isinstance(m, bytes) else m.SerializeToString(),
        response_deserializer=Resp.FromString,
    )
    metadata = [("authorization", "Bearer " + token)] if token else None
    reqs = frames(case, Req)
    acked = 0
    out = {"case": case, "code": "OK", "details": ""}
    try:
        for resp in publish(iter(reqs), timeout=30, metadata=metadata):
            acked = resp.acked_seq
            if case == "valid" and acked >= 3:
                break
    except grpc.RpcError as e:
        out["code"] = e.code().name
        out["details"] = e.details()
    out["acked"] = acked
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
