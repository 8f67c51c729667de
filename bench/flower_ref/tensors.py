"""Tensor framing for the Flower-like reference (bench/flower_ref).

Each tensor travels as numpy's .npy bytes (np.save / np.load without
pickle), which is how Flower 1.x serialises a model's tensors. A message is
a one-byte kind, a little-endian u32 tensor count, then per tensor a u64
length and its .npy bytes. Replies carry the training row count (u64) and
the mean training loss (f64) before the tensors.
"""
import io
import struct

import numpy as np

FIT = b"F"     # server -> client: train on these tensors
STOP = b"S"    # server -> client: the run is over
HELLO = b"H"   # client -> server: first message on the stream (site id)
REPLY = b"R"   # client -> server: trained tensors, row count, loss

MAX_TENSORS = 64


def npy_bytes(arr):
    """One tensor's .npy bytes."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def pack(kind, tensors, head=b""):
    """kind + head + u32 count + (u64 length + .npy bytes) per tensor."""
    parts = [kind, head, struct.pack("<I", len(tensors))]
    for t in tensors:
        b = npy_bytes(t)
        parts.append(struct.pack("<Q", len(b)))
        parts.append(b)
    return b"".join(parts)


def unpack_tensors(buf, off):
    """The tensors framed at buf[off:]; ValueError on a malformed frame."""
    if len(buf) < off + 4:
        raise ValueError("tensor frame: short count")
    (count,) = struct.unpack_from("<I", buf, off)
    if count > MAX_TENSORS:
        raise ValueError(f"tensor frame: {count} tensors > {MAX_TENSORS}")
    off += 4
    out = []
    view = memoryview(buf)
    for i in range(count):
        if len(buf) < off + 8:
            raise ValueError(f"tensor frame: short length of tensor {i}")
        (n,) = struct.unpack_from("<Q", buf, off)
        off += 8
        if len(buf) < off + n:
            raise ValueError(f"tensor frame: tensor {i} truncated")
        out.append(np.load(io.BytesIO(view[off:off + n]), allow_pickle=False))
        off += n
    if off != len(buf):
        raise ValueError("tensor frame: trailing bytes")
    return out


def pack_reply(tensors, rows, loss):
    """A client's reply: its tensors, its training row count and mean loss."""
    return pack(REPLY, tensors, struct.pack("<Qd", rows, loss))


def unpack_reply(buf):
    """(tensors, rows, loss) of a reply; ValueError if it is not one."""
    if buf[:1] != REPLY or len(buf) < 17:
        raise ValueError("reply: wrong kind or short header")
    rows, loss = struct.unpack_from("<Qd", buf, 1)
    return unpack_tensors(buf, 17), rows, loss
