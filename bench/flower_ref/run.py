"""A minimal Flower-like FedAvg run: a gRPC server without TLS and N client
processes (bench/flower_ref/client.py) that each hold one bidirectional
stream. Each round the server frames the model (each tensor as .npy bytes),
sends it to every client, waits for every reply (trained tensors + row
count), decodes them and takes the row-weighted mean (FedAvg).

It has none of Flower's own framework work (strategy objects, Parameters
conversions, client manager and proxies, its driver, protobuf messages,
history): a LOWER bound on a Flower 1.x round on the same machine.

    /usr/bin/python3 bench/flower_ref/run.py --hidden H --sites N --rounds R [--out F.json]

Round time: from framing the model to the averaged model in hand (open to
close). Prints and writes the median over rounds 2..R.
"""
import argparse
import concurrent.futures
import json
import os
import queue
import subprocess
import sys
import threading
import time

import grpc
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mlp      # noqa: E402
import tensors  # noqa: E402

MAX_MSG = 512 * 1024 * 1024
WAIT_S = 600.0


class Streams:
    """The connected clients: one inbox (server -> client) and one outbox
    (client -> server) per stream."""

    def __init__(self):
        self.cond = threading.Condition()
        self.slots = []

    def join(self, request_iterator, context):
        try:
            next(request_iterator)  # HELLO
        except StopIteration:
            return
        inbox, outbox = queue.Queue(), queue.Queue()
        with self.cond:
            self.slots.append((inbox, outbox))
            self.cond.notify_all()
        while True:
            msg = inbox.get()
            yield msg
            if msg[:1] == tensors.STOP:
                return
            try:
                outbox.put(next(request_iterator))
            except (StopIteration, grpc.RpcError):
                outbox.put(None)
                return

    def wait_for(self, n, deadline):
        with self.cond:
            while len(self.slots) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True


def await_reply(outbox, procs, rnd, i):
    """Stream i's reply of round rnd; RuntimeError naming the cause if its
    stream ends, a client process exits, or WAIT_S passes."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            reply = outbox.get(timeout=0.5)
        except queue.Empty:
            dead = [p.args[-1] for p in procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"round {rnd}: client(s) {', '.join(dead)} exited")
            if time.monotonic() > deadline:
                raise RuntimeError(f"round {rnd}: no reply on stream {i} in {WAIT_S:.0f} s")
            continue
        if reply is None:
            raise RuntimeError(f"round {rnd}: client stream {i} ended")
        return reply


def fedavg(results):
    """Row-weighted mean of the clients' tensors."""
    total = sum(rows for _, rows, _ in results)
    out = [np.zeros_like(t) for t in results[0][0]]
    for ts, rows, _ in results:
        for acc, t in zip(out, ts):
            acc += t * np.float32(rows / total)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, required=True, help="H of the MLP 32-H-2")
    ap.add_argument("--sites", type=int, required=True)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", help="write the result as JSON here")
    a = ap.parse_args()
    if a.rounds < 2 or a.sites < 1 or a.hidden < 1:
        ap.error("need --rounds >= 2, --sites >= 1, --hidden >= 1")

    streams = Streams()
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=a.sites + 4),
                         options=[("grpc.max_send_message_length", MAX_MSG),
                                  ("grpc.max_receive_message_length", MAX_MSG)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "flowerref.Ref", {"Join": grpc.stream_stream_rpc_method_handler(streams.join)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "client.py"),
                               f"127.0.0.1:{port}", str(i + 1)]) for i in range(a.sites)]
    rc = 0
    try:
        if not streams.wait_for(a.sites, time.monotonic() + 120):
            raise RuntimeError(f"only {len(streams.slots)} of {a.sites} clients connected in 120 s")
        model = mlp.init(a.hidden)
        params = sum(t.size for t in model)
        times, losses = [], []
        for r in range(1, a.rounds + 1):
            t0 = time.perf_counter()
            msg = tensors.pack(tensors.FIT, model)
            for inbox, _ in streams.slots:
                inbox.put(msg)
            results = []
            for i, (_, outbox) in enumerate(streams.slots):
                reply = await_reply(outbox, procs, r, i)
                results.append(tensors.unpack_reply(reply))
            model = fedavg(results)
            times.append(time.perf_counter() - t0)
            losses.append(sum(l * n for _, n, l in results) / sum(n for _, n, _ in results))
        for inbox, _ in streams.slots:
            inbox.put(tensors.STOP)
        for p in procs:
            if p.wait(timeout=60) != 0:
                rc = 1
                print(f"flower_ref: a client exited {p.returncode}", file=sys.stderr)
        timed = sorted(times[1:])
        med = timed[len(timed) // 2] * 1000.0
        res = {"bench": "flower_ref", "params": int(params), "hidden": a.hidden,
               "sites": a.sites, "rounds": a.rounds, "median_ms": round(med, 3),
               "round_ms": [round(t * 1000.0, 3) for t in times],
               "train_loss": [round(l, 4) for l in losses],
               "loadavg_1m": float(open("/proc/loadavg").read().split()[0])}
        print(f"flower_ref: P={params} N={a.sites} median {med:.1f} ms over rounds 2..{a.rounds}"
              f" (loss {losses[0]:.3f} -> {losses[-1]:.3f})")
        if a.out:
            with open(a.out, "w") as f:
                json.dump(res, f)
                f.write("\n")
    except Exception as e:  # noqa: BLE001 - report any failure, then clean up
        print(f"flower_ref: error: {e}", file=sys.stderr)
        rc = 1
    finally:
        for inbox, _ in streams.slots:  # ends every stream handler's wait
            inbox.put(tensors.STOP)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        server.stop(grace=None)
    return rc


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no wait on gRPC's worker threads (a dead client's stream)
