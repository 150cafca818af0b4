"""Vectorised scans of one column: the numbers behind a profile, without Python loops over rows.

A numeric column arrives as a list of numpy chunks (one for a pandas column, one per Arrow
record batch for an Arrow column, see ``_arrow``). Numbers are read in blocks of ``BLOCK``
values counted from the column's first row, whatever the chunking (a block that straddles two
chunks is copied), so both give bitwise the same results. Every temporary stays in the CPU
cache and each block is touched once: a block whose sum is finite holds no NaN or infinity
(the common case costs no extra pass), and its count, min, max, mean and sum of squared
deviations are combined with Chan's parallel formula. :func:`scan_column` reads a column once
for its moments and, from each block while it is in the cache, the rows of the quantile
sample and the hash-sampled values (a second pass happens only when the finite values are too
few for the sample's level, or an early block looked integral). Whole numbers are counted with
``bincount`` when their range is small, other values with a hash table, and only when a
stratified sample of the column suggests few distinct values; otherwise only the values picked
by hash sampling (one in ``SAMPLE_RATE``) are made distinct. Labels are counted on categorical
codes (or a dictionary column's indices), with Arrow's hash table for Arrow-backed strings, or
with ``collections.Counter`` for small batches, so the per-value sketch updates run once per
distinct value.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from readyml.data import _sketches as sk

BLOCK: Final = 1 << 17  # values per block: 1 MiB of float64, temporaries stay in the cache
KLL_SAMPLE_LIMIT: Final = 1 << 16  # finite values fed to the quantile sketch whole, at most
BINCOUNT_LIMIT: Final = 1 << 22  # widest range of whole numbers counted with bincount
SMALL_BATCH: Final = 256  # rows up to which labels are counted in plain Python
SAMPLE_SEED: Final = 0x5EED  # fixed, so profiles of the same data are identical
_HUGE: Final = 1e150  # magnitude above which sums of values or squares may overflow

Table = tuple[NDArray[np.object_], NDArray[np.int64]]
Chunks = Iterable[NDArray[Any]]  # one column's values, chunk after chunk; read more than once
Scratch = tuple[NDArray[np.uint64], NDArray[np.bool_]]  # one block's hashes and sampling mask


@dataclass
class Moments:
    """Exact counts and moments of the finite values of a numeric column."""

    n_values: int = 0
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    m2: float = 0.0
    m2_exp: int = 0
    integral: bool = True

    def add(
        self, count: int, low: float, high: float, mean: float, m2: float, m2_exp: int = 0
    ) -> None:
        """Combine one block's statistics (Chan et al.'s parallel update).

        The block's sum of squared deviations is ``m2 * 4**m2_exp`` (see :func:`combine`).
        """
        if self.mean is None or self.min is None or self.max is None:
            self.n_values, self.min, self.max, self.mean = count, low, high, mean
            self.m2, self.m2_exp = m2, m2_exp
            return
        self.mean, self.m2, self.m2_exp = combine(
            (self.n_values, self.mean, self.m2, self.m2_exp), (count, mean, m2, m2_exp)
        )
        self.n_values += count
        self.min, self.max = min(self.min, low), max(self.max, high)


Part = tuple[int, float, float, int]  # count, mean, m2, m2_exp of a group of values
_M2_STEP: Final = 64  # powers of 4 by which a sum of squares is scaled down when it overflows


def combine(left: Part, right: Part) -> tuple[float, float, int]:
    """Mean and sum of squared deviations of two groups (Chan et al.'s parallel formula).

    A sum of squared deviations is held as ``m2 * 4**m2_exp``, so that values near the float
    limit (whose squares overflow) keep an exact-to-rounding standard deviation; ``m2_exp`` is
    0 unless the plain sum overflows, and then the arithmetic is the plain formula's.
    """
    n_a, mean_a, m2_a, exp_a = left
    n_b, mean_b, m2_b, exp_b = right
    total = n_a + n_b
    mean = mean_a + (mean_b - mean_a) * n_b / total
    if not math.isfinite(mean):  # the difference of the means overflowed
        mean = mean_a * (n_a / total) + mean_b * (n_b / total)
    exp = max(exp_a, exp_b)
    for _ in range(32):  # two steps at most for finite inputs
        delta = math.ldexp(mean_b, -exp) - math.ldexp(mean_a, -exp)
        m2 = (
            math.ldexp(m2_a, 2 * (exp_a - exp))
            + math.ldexp(m2_b, 2 * (exp_b - exp))
            + delta * delta * n_a * n_b / total
        )
        if math.isfinite(m2):
            return mean, m2, exp
        exp += _M2_STEP
    return mean, sys.float_info.max, exp


def scaled_sqrt(m2: float, m2_exp: int, divisor: int) -> float:
    """``sqrt(m2 * 4**m2_exp / divisor)``, capped at the largest float (JSON has no inf)."""
    try:
        return math.ldexp(math.sqrt(max(m2, 0.0) / divisor), m2_exp)
    except OverflowError:
        return sys.float_info.max


@dataclass
class Scan:
    """What one pass over a numeric column gathered (see :func:`scan_column`).

    ``picked``: the finite values at the stratified sample's rows for ``level``, or ``None``
    when not taken. ``hashed``: the distinct finite hash-sampled values, or ``None`` when not
    every block was sampled (integer and integral columns are counted otherwise).
    """

    moments: Moments
    level: int
    picked: NDArray[np.float64] | None
    hashed: NDArray[np.float64] | None


def blocks(chunks: Chunks, size: int = BLOCK) -> Iterator[NDArray[Any]]:
    """Consecutive blocks of ``size`` values (the last may be shorter), views where possible."""
    pending: list[NDArray[Any]] = []
    held = 0
    for chunk in chunks:
        start = 0
        if held:
            start = min(size - held, len(chunk))
            pending.append(chunk[:start])
            held += start
            if held < size:
                continue
            yield np.concatenate(pending)
            pending, held = [], 0
        stop = start + (len(chunk) - start) // size * size
        for begin in range(start, stop, size):
            yield chunk[begin : begin + size]
        if stop < len(chunk):
            pending, held = [chunk[stop:]], len(chunk) - stop
    if held:
        yield pending[0] if len(pending) == 1 else np.concatenate(pending)


def concatenate(parts: Sequence[NDArray[Any]]) -> NDArray[Any]:
    """The parts as one array (no copy for a single part)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def scan_column(chunks: Chunks, length: int) -> Scan:
    """Moments, quantile-sample rows and hash-sampled values of a column of ``length`` rows.

    The quantile sample is taken at the level ``length`` calls for, which is the level of the
    finite values unless many are missing (then :func:`quantile_sample` reads again).
    """
    level = sample_level(length)
    index = sample_index(length, level) if level else None
    moments = Moments()
    picked: list[NDArray[Any]] = []
    kept: list[NDArray[np.float64]] = []
    every = True
    scratch = _scratch()
    start = 0
    with np.errstate(over="ignore", invalid="ignore"):
        for block in blocks(chunks):
            if index is not None:
                picked.append(_pick(block, index, start))
            _scan_block(block, moments)
            if block.dtype.kind == "f" and not moments.integral:
                kept.append(_hash_sample(block, scratch))
            else:
                every = False
            start += len(block)
    sample = _finite(concatenate(picked)) if picked and start == length else None
    distinct = _distinct_finite(kept) if every and kept else None
    return Scan(moments, level, sample, distinct)


def _pick(block: NDArray[Any], index: NDArray[np.int64], start: int) -> NDArray[Any]:
    """The values of ``block`` (rows ``start`` on) at the increasing ``index`` of the column."""
    low, high = np.searchsorted(index, [start, start + len(block)]).tolist()
    return block[index[low:high] - start]


def scan_numbers(chunks: Chunks) -> Moments:
    """Counts of NaN and infinities, and exact moments of the finite values, block by block."""
    out = Moments()
    with np.errstate(over="ignore", invalid="ignore"):
        for block in blocks(chunks):
            _scan_block(block, out)
    return out


def _scan_block(raw: NDArray[np.generic], out: Moments) -> None:
    block: NDArray[np.float64]
    if raw.dtype.kind == "f":
        block = np.asarray(raw, dtype=np.float64)
        total = float(np.add.reduce(block))
        if not math.isfinite(total):
            block = _finite_part(block, out)
            if not len(block):
                return
            total = float(np.add.reduce(block))
        if out.integral:
            out.integral = bool(np.array_equal(np.floor(block), block))
        low, high = float(block.min()), float(block.max())
    else:
        low, high = float(raw.min()), float(raw.max())
        block = raw.astype(np.float64)
        total = float(np.add.reduce(block))
    count, largest = len(block), max(abs(low), abs(high))
    if math.isfinite(total) and largest < _HUGE:
        mean = total / count
        deviation = block - mean
        m2 = float(np.add.reduce(np.square(deviation, out=deviation)))  # not BLAS: no threads
        if math.isfinite(m2):
            out.add(count, low, high, mean, m2)
            return
    out.add(count, low, high, *_scaled_moments(block, low, high))


def quantile_sample(
    chunks: Chunks, n_values: int, scan: Scan | None = None
) -> tuple[NDArray[np.float64], int]:
    """Finite values for the quantile sketch, and the sampling level (1 in ``2**level``).

    Up to ``KLL_SAMPLE_LIMIT`` finite values are all kept. Beyond, one row is drawn at random
    from each stratum of ``2**level`` consecutive rows (fixed seed): an unbiased sample of at
    least half the limit, whose rank error (~0.3 %) is small next to the sketch's own (~1.3 %).
    A ``scan`` that already picked the rows at that level saves reading the column again.
    """
    level = sample_level(n_values)
    if not level:
        return finite_values(chunks), 0
    if scan is not None and scan.level == level and scan.picked is not None:
        return scan.picked, level
    length = sum(len(chunk) for chunk in chunks)
    index = sample_index(length, level)
    return finite_values([_take(chunks, index[index < length])]), level


def sample_level(n_values: int) -> int:
    """The quantile sample's level for ``n_values`` finite values (0: keep them all)."""
    if n_values <= KLL_SAMPLE_LIMIT:
        return 0
    return math.ceil(math.log2(n_values / KLL_SAMPLE_LIMIT))


def sample_index(length: int, level: int) -> NDArray[np.int64]:
    """One random row in each stratum of ``2**level`` rows (fixed seed); may reach past the end."""
    rate = 1 << level
    starts = np.arange(0, length, rate, dtype=np.int64)
    offsets = np.random.default_rng(SAMPLE_SEED).integers(0, rate, len(starts))
    index: NDArray[np.int64] = starts + offsets
    return index


def _take(chunks: Chunks, index: NDArray[np.int64]) -> NDArray[Any]:
    """The values at an increasing ``index`` of the whole column, in one pass over the chunks."""
    parts: list[NDArray[Any]] = []
    start = 0
    for chunk in chunks:
        stop = start + len(chunk)
        low, high = np.searchsorted(index, [start, stop]).tolist()
        parts.append(chunk[index[low:high] - start])
        start = stop
    return concatenate(parts)


def number_counts(
    chunks: Chunks, moments: Moments, hashed: NDArray[np.float64] | None = None
) -> tuple[tuple[NDArray[np.float64], NDArray[np.int64]] | None, NDArray[np.float64] | None]:
    """Distinct finite values with their counts, or ``None`` when there are clearly too many.

    Exact whenever the column has at most ``EXACT_DISTINCT_LIMIT`` distinct values. Also
    returns the hash-sampled distinct values when they were used to decide (``hashed``, when
    a scan already took them, else computed here).
    """
    if moments.n_values == 0 or moments.min is None or moments.max is None:
        return (np.empty(0), np.empty(0, dtype=np.int64)), None
    width = moments.max - moments.min + 1
    if moments.n_values <= sk.EXACT_DISTINCT_LIMIT:
        return value_counts(finite_values(chunks)), None
    if moments.integral and width <= min(BINCOUNT_LIMIT, 4 * moments.n_values):
        return _bincount(chunks, int(moments.min), int(width)), None
    kept = hash_sampled_values(chunks) if hashed is None else hashed
    if len(kept) * sk.SAMPLE_RATE > 4 * sk.EXACT_DISTINCT_LIMIT:
        return None, kept
    return value_counts(finite_values(chunks)), kept


def hash_sampled_values(chunks: Chunks) -> NDArray[np.float64]:
    """Distinct finite values whose hash is sampled (see ``_sketches``), block by block."""
    scratch = _scratch()
    return _distinct_finite([_hash_sample(block, scratch) for block in blocks(chunks)])


def _hash_sample(raw: NDArray[Any], scratch: Scratch) -> NDArray[np.float64]:
    """The values of one block whose hash is sampled."""
    block = np.ascontiguousarray(raw, dtype=np.float64)
    mixed, keep = scratch[0][: len(block)], scratch[1][: len(block)]
    np.multiply(block.view(np.uint64), sk.MIX1, out=mixed)
    np.less(mixed, sk.SAMPLE_BELOW, out=keep)
    return np.compress(keep, block)


def _scratch() -> Scratch:
    """Space for one block's hashes and sampling mask."""
    return np.empty(BLOCK, dtype=np.uint64), np.empty(BLOCK, dtype=np.bool_)


def _distinct_finite(parts: list[NDArray[np.float64]]) -> NDArray[np.float64]:
    if not parts:
        return np.empty(0)
    chosen = concatenate(parts)
    return np.unique(chosen[np.isfinite(chosen)])  # sorts: faster than hashing, without the GIL


def finite_values(chunks: Chunks) -> NDArray[np.float64]:
    """The finite values as one contiguous float64 array."""
    parts = [_finite(chunk) for chunk in chunks]
    return np.ascontiguousarray(concatenate(parts)) if parts else np.empty(0)


def _finite(chunk: NDArray[Any]) -> NDArray[np.float64]:
    numbers = np.asarray(chunk, dtype=np.float64)
    return numbers[np.isfinite(numbers)] if chunk.dtype.kind == "f" else numbers


def value_counts(values: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Distinct values and counts (sort-based for small arrays, hash-based otherwise)."""
    if len(values) <= SMALL_BATCH:
        uniques, counts = np.unique(values, return_counts=True)
        return np.asarray(uniques, dtype=np.float64), np.asarray(counts, dtype=np.int64)
    counted = pd.Series(values, copy=False).value_counts(sort=False)
    return counted.index.to_numpy(dtype=np.float64), np.asarray(counted, dtype=np.int64)


def label_table(series: pd.Series, kind: str) -> tuple[Table, int]:
    """Each non-null label as text with its count, most frequent first; and the null count."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _category_table(series)
    if len(series) <= SMALL_BATCH:
        return _python_table(series, kind)
    if dtype == np.bool_:
        values = series.to_numpy()
        trues = int(np.count_nonzero(values))
        labels = np.array(["True", "False"], dtype=np.object_)
        return _sorted(labels, [trues, len(values) - trues]), 0
    missing = int(series.isna().sum())
    present = series if not missing else series.dropna()
    if kind == "mixed":
        present = present.astype(str)
    counted = present.value_counts(sort=False)
    labels = np.array([str(v) for v in counted.index], dtype=np.object_)
    return _sorted(labels, np.asarray(counted, dtype=np.int64)), missing


def _category_table(series: pd.Series) -> tuple[Table, int]:
    return category_table([series.cat.codes.to_numpy()], series.cat.categories.tolist())


def category_table(codes: Chunks, categories: list[Any]) -> tuple[Table, int]:
    """Like :func:`label_table` for category codes (-1 for null) into ``categories``."""
    counts = np.zeros(len(categories) + 1, dtype=np.int64)
    for block in blocks(codes):
        counts += np.bincount(block.astype(np.intp) + 1, minlength=len(counts))  # null: 0
    present = np.flatnonzero(counts[1:])
    labels = np.array([str(categories[i]) for i in present.tolist()], dtype=np.object_)
    return _sorted(labels, np.asarray(counts[1:][present], dtype=np.int64)), int(counts[0])


def _python_table(series: pd.Series, kind: str) -> tuple[Table, int]:
    values = series.to_numpy(dtype=object)
    nulls = pd.isna(values)
    n_nulls = int(np.count_nonzero(nulls))
    present = (values[~nulls] if n_nulls else values).tolist()
    counts = Counter(present if kind == "string" else map(str, present))
    labels = np.array(list(counts), dtype=np.object_)
    return _sorted(labels, list(counts.values())), n_nulls


def _sorted(labels: NDArray[np.object_], counts: NDArray[np.int64] | list[int]) -> Table:
    weights = np.asarray(counts, dtype=np.int64)
    keep = weights > 0
    labels, weights = labels[keep], weights[keep]
    order = np.argsort(-weights, kind="stable")
    return labels[order], weights[order]


def _finite_part(block: NDArray[np.float64], out: Moments) -> NDArray[np.float64]:
    finite = np.isfinite(block)
    n_finite = int(np.count_nonzero(finite))
    if n_finite == len(block):
        return block
    nan = int(np.count_nonzero(np.isnan(block)))
    posinf = int(np.count_nonzero(block == np.inf))
    out.nan += nan
    out.posinf += posinf
    out.neginf += len(block) - n_finite - nan - posinf
    return block[finite]


def _bincount(
    chunks: Chunks, low: int, width: int
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    counts = np.zeros(width, dtype=np.int64)
    # Accumulating wide counts per block is slow: count those chunk by chunk.
    parts = blocks(chunks) if width <= BLOCK else iter(chunks)
    for block in parts:
        if block.dtype.kind == "f":
            offsets = (block[np.isfinite(block)] - low).astype(np.intp, copy=False)
        else:  # in intp: ``block - low`` can overflow a narrow type (int8 from -100 to 100)
            offsets = np.subtract(block, low, dtype=np.intp, casting="unsafe")
        counts += np.bincount(offsets, minlength=width)
    present = np.flatnonzero(counts)
    return (present + low).astype(np.float64), counts[present]


def _scaled_moments(
    finite: NDArray[np.float64], low: float, high: float
) -> tuple[float, float, int]:
    """Mean, and sum of squared deviations as ``(m2, m2_exp)``, of values in ``[low, high]``.

    The values are divided by a power of two above their magnitude (exactly, but for those
    too small to matter), so neither their sum nor their squared deviations overflow.
    """
    if low == high:  # a constant, exactly
        return low, 0.0, 0
    exp = math.frexp(max(abs(low), abs(high)))[1]
    scaled = np.ldexp(finite, -exp)
    mean = float(np.add.reduce(scaled)) / len(scaled)
    deviation = scaled - mean
    m2 = float(np.add.reduce(np.square(deviation, out=deviation)))
    return math.ldexp(mean, exp), m2, exp
