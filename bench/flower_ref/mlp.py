"""The reference's model: an MLP 32-H-2 (ReLU, softmax cross-entropy) in
numpy float32, trained by plain mini-batch SGD. P = 35H + 2 (H = 64 ->
2,242; H = 28,571 -> 999,987): the models of bench/rounds_engine.sh's
training rows. Tensors: W1 (32, H), b1 (H), W2 (H, 2), b2 (2).
"""
import numpy as np

FEATURES = 32
CLASSES = 2


def init(hidden, seed=0):
    """He-initialised tensors of an MLP 32-hidden-2."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((FEATURES, hidden)) * np.sqrt(2.0 / FEATURES)).astype(np.float32)
    w2 = (rng.standard_normal((hidden, CLASSES)) * np.sqrt(2.0 / hidden)).astype(np.float32)
    return [w1, np.zeros(hidden, np.float32), w2, np.zeros(CLASSES, np.float32)]


def site_data(site, rows=200):
    """A site's synthetic table like rounds_engine.sh's: 32 Gaussian features
    shifted by 0.5 * y, binary label alternating by row."""
    rng = np.random.default_rng(1000 * site + 250)
    y = np.arange(rows) % 2
    x = rng.normal(0.5 * y[:, None], 1.0, (rows, FEATURES)).astype(np.float32)
    return x, y


def train_epoch(tensors, x, y, batch=32, lr=0.01, seed=0):
    """One epoch of SGD in shuffled mini-batches; returns (tensors, mean loss).
    The rate is folded into the output gradient so every weight gradient
    comes out already scaled (one pass per update, none extra)."""
    w1, b1, w2, b2 = (t.astype(np.float32, copy=True) for t in tensors)
    order = np.random.default_rng(seed).permutation(len(y))
    losses = []
    for s in range(0, len(y), batch):
        idx = order[s:s + batch]
        xb, yb = x[idx], y[idx]
        m = len(idx)
        h = xb @ w1
        h += b1
        np.maximum(h, 0.0, out=h)
        z = h @ w2 + b2
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=1, keepdims=True)
        rows = np.arange(m)
        losses.append(float(-np.log(p[rows, yb] + 1e-12).mean()))
        p[rows, yb] -= 1.0
        dz = p * np.float32(lr / m)     # lr x dLoss/dz
        dh = dz @ w2.T
        dh *= h > 0.0                   # ReLU's mask (h > 0 exactly where pre > 0)
        w2 -= h.T @ dz
        b2 -= dz.sum(axis=0)
        w1 -= xb.T @ dh
        b1 -= dh.sum(axis=0)
    return [w1, b1, w2, b2], sum(losses) / len(losses)
