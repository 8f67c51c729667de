#!/usr/bin/env python3
"""Reads a safetensors file with the standard library only (struct, json,
hashlib) and computes an MLP's outputs for rows of a CSV, as a hospital's
own tooling would from `metafl export`: nothing of metafl is used.

usage: safetensors_predict.py MODEL.safetensors ROWS.csv
prints one "logit,probability" line per row (probability for bce models),
after checking the file's structure and that BLAKE2b-256 of the tensor data
equals the metadata's theta_blake2b (stderr says what failed; exit 1)."""
import hashlib
import json
import math
import struct
import sys


def die(msg):
    print("safetensors_predict: " + msg, file=sys.stderr)
    sys.exit(1)


def read_safetensors(path):
    raw = open(path, "rb").read()
    if len(raw) < 8:
        die("file too short")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8 or n > 16 << 20:
        die(f"header length {n} does not fit the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors, spans = {}, []
    for name, t in header.items():
        if t["dtype"] != "F32":
            die(f"{name}: dtype {t['dtype']}")
        b, e = t["data_offsets"]
        count = 1
        for d in t["shape"]:
            count *= d
        if e - b != 4 * count:
            die(f"{name}: shape {t['shape']} does not match {e - b} bytes")
        tensors[name] = (t["shape"], list(struct.unpack(f"<{count}f", data[b:e])))
        spans.append((b, e))
    spans.sort()
    pos = 0
    for b, e in spans:
        if b != pos:
            die("tensor data has a gap or overlap")
        pos = e
    if pos != len(data):
        die("bytes after the last tensor")
    return meta, tensors, data, spans


def theta_digest(data, spans):
    """θ's digest as metafl publishes it (metrics theta_blake2b): BLAKE2b-256
    of each tensor's bytes, in the file's data order (the learner's), then
    BLAKE2b-256 of those hashes side by side (one tensor: its hash)."""
    hashes = [hashlib.blake2b(data[b:e], digest_size=32).digest() for b, e in spans]
    if len(hashes) == 1:
        return hashes[0].hex()
    return hashlib.blake2b(b"".join(hashes), digest_size=32).hexdigest()


def mlp_forward(spec, tensors, x):
    kind, dims = spec.split(":", 1)
    if kind not in ("mlp", "linear"):
        die(f"this reader knows mlp/linear, not {spec}")
    n_layers = len(dims.split("-")) - 1
    h = x
    for i in range(1, n_layers + 1):
        (out_dim, in_dim), w = tensors[f"fc{i}.weight"]
        _, b = tensors[f"fc{i}.bias"]
        if len(h) != in_dim:
            die(f"fc{i}: {len(h)} inputs, weight wants {in_dim}")
        y = [b[o] + sum(w[o * in_dim + j] * h[j] for j in range(in_dim)) for o in range(out_dim)]
        h = [max(0.0, v) for v in y] if i < n_layers else y
    return h


def main():
    if len(sys.argv) != 3:
        die(__doc__)
    meta, tensors, data, spans = read_safetensors(sys.argv[1])
    if theta_digest(data, spans) != meta.get("theta_blake2b"):
        die("theta_blake2b does not match the tensor data")
    for line in open(sys.argv[2]):
        line = line.strip()
        if not line or line.startswith("#") or not (line[0].isdigit() or line[0] in "+-."):
            continue
        x = [float(v) for v in line.split(",")]
        out = mlp_forward(meta["spec"], tensors, x)
        if meta.get("loss") == "bce":
            print("%.9g,%.9g" % (out[0], 1.0 / (1.0 + math.exp(-out[0]))))
        else:
            print(",".join("%.9g" % v for v in out))


main()
