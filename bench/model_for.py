#!/usr/bin/env python3
"""The benches' synthetic model for about P parameters (32 features, 2 classes).

    model_for.py P   ->   "SPEC REAL_P HIDDEN_UNITS"

Up to 20M parameters one hidden layer, mlp:32-H-2 (P = 35H + 2: H = 28,571
gives Flower's 1M model); above, two equal hidden layers mlp:32-H-H-2
(P = H² + 36H + 2), because a single hidden layer of millions of units
cannot allocate the learner's activation buffers (max_batch × H floats
per layer) and no real model has that shape.
"""
import math
import sys

p = int(sys.argv[1])
if p <= 20_000_000:
    h = (p - 2 + 17) // 35
    print(f"mlp:32-{h}-2 {35 * h + 2} {h}")
else:
    h = int((-36 + math.sqrt(36 * 36 + 4 * (p - 2))) / 2)
    print(f"mlp:32-{h}-{h}-2 {h * h + 36 * h + 2} {2 * h}")
