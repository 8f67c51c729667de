"""A reference client: dials the server over gRPC without TLS, holds one
bidirectional stream (as Flower 1.x clients do), and answers each FIT with
one local epoch over its 200 rows (batch 32), its row count and loss.

    /usr/bin/python3 bench/flower_ref/client.py HOST:PORT SITE
"""
import os
import queue
import sys

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mlp      # noqa: E402
import tensors  # noqa: E402

METHOD = "/flowerref.Ref/Join"
MAX_MSG = 512 * 1024 * 1024  # Flower's gRPC message limit (512 MiB)


def main(argv):
    if len(argv) != 3:
        print("usage: client.py HOST:PORT SITE", file=sys.stderr)
        return 2
    addr, site = argv[1], int(argv[2])
    x, y = mlp.site_data(site)
    outbox = queue.Queue()

    def requests():
        while True:
            m = outbox.get()
            if m is None:
                return
            yield m

    outbox.put(tensors.HELLO + str(site).encode())
    opts = [("grpc.max_send_message_length", MAX_MSG),
            ("grpc.max_receive_message_length", MAX_MSG)]
    with grpc.insecure_channel(addr, options=opts) as ch:
        join = ch.stream_stream(METHOD)  # bytes in, bytes out
        rnd = 0
        for msg in join(requests(), wait_for_ready=True):
            if msg[:1] == tensors.STOP:
                break
            if msg[:1] != tensors.FIT:
                print(f"client {site}: unexpected message kind {msg[:1]!r}", file=sys.stderr)
                outbox.put(None)
                return 1
            rnd += 1
            w = tensors.unpack_tensors(msg, 1)
            w, loss = mlp.train_epoch(w, x, y, seed=1000 * site + rnd)
            outbox.put(tensors.pack_reply(w, len(y), loss))
        outbox.put(None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
