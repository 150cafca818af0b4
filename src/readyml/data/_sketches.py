"""Sketch plumbing for profiles: canonical values, hash sampling and serialization.

Distinct counts use two HyperLogLog sketches per column. ``exact`` receives every distinct
value while a chunk has at most ``EXACT_DISTINCT_LIMIT`` of them, and is dropped (``None``)
once any chunk has more. ``sampled`` always receives the distinct values whose 64-bit hash
has its top six bits zero (one value in 64, chosen by value, so the same values are kept in
every chunk and unions stay correct) and is scaled by 64. The sampled estimate is only used
when the exact sketch was dropped, i.e. when the column has more than 65,536 distinct values,
so it rests on about a thousand sampled values or more: about 3 % sampling error on top of
HyperLogLog's ~1.6 % (``lg_k = 12``). This keeps the Python-level cost per column to about
``n / 64`` sketch updates instead of ``n``.
"""

from __future__ import annotations

import base64
from collections import deque
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

KLL_K = 200  # KLL accuracy parameter: ~1.65 % normalized rank error (double-sided)
# Finite values a numeric column profile also keeps exactly, in memory only, for drift: KLL
# compaction flips coins DataSketches lets no one seed, so sketched drift varies run to run.
# 2**15 values are 256 KiB a column (no more than the column itself), half the KLL sample
# limit (so they are all at hand when profiling), and make exact KS or Wasserstein a few ms.
EXACT_VALUES_LIMIT = 1 << 15
HLL_LG_K = 12  # HyperLogLog log2(registers): ~1.6 % relative standard error
FREQUENT_LG_MAP = 10  # frequent-items map of 1,024 slots (~768 tracked items)
TOP_PER_CHUNK = 4096  # most frequent values of one chunk fed to the frequent-items sketch
EXACT_DISTINCT_LIMIT = 65_536  # distinct values per chunk fed to the exact HLL sketch
SAMPLE_BELOW = np.uint64(1 << 58)  # keep hashes whose top 6 bits are zero ...
SAMPLE_RATE = 64  # ... which is one distinct value in 64
MIX1 = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio, odd: Fibonacci hashing


def hash_floats(values: NDArray[np.float64]) -> NDArray[np.uint64]:
    """Multiplicative (Fibonacci) hash of the IEEE bits of ``values``; its top bits sample.

    One multiplication per value, so sampling costs about as much as reading the column.
    Only the top six bits are used, to pick values; the sketches hash what they keep again.
    """
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    hashed: NDArray[np.uint64] = bits * MIX1
    return hashed


def update_all(sketch: Any, values: list[Any]) -> None:
    """``sketch.update(v)`` for every value, without a Python-level loop body."""
    deque(map(sketch.update, values), maxlen=0)


def hash_labels(labels: NDArray[np.object_]) -> NDArray[np.uint64]:
    """Stable 64-bit hashes of string labels (pandas' keyed SipHash, the same in every process)."""
    hashed: NDArray[np.uint64] = pd.util.hash_array(labels, categorize=False)
    return hashed


def sampled(hashes: NDArray[np.uint64]) -> NDArray[np.bool_]:
    """Mask of the values kept by hash sampling (one in ``SAMPLE_RATE``)."""
    mask: NDArray[np.bool_] = hashes < SAMPLE_BELOW
    return mask


def encode(blob: bytes) -> str:
    """Bytes of a serialized sketch as base64 text for JSON."""
    return base64.b64encode(blob).decode("ascii")


def decode(text: str) -> bytes:
    """Inverse of :func:`encode`."""
    return base64.b64decode(text.encode("ascii"), validate=True)
