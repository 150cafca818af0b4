"""Class probabilities of common scikit-learn classifiers, computed from their fitted state.

scikit-learn validates its input on every call (``check_array``, feature names, dtype and
finiteness checks) and a forest dispatches each tree through joblib, even with ``n_jobs=1``.
For the small batches a server sees that overhead is most of the cost: on 32 rows of 30
features, a logistic regression's ``predict_proba`` takes ~86 µs of which ~5 µs is arithmetic,
a 200-tree gradient boosting ~240 µs of which ~60 µs is the trees, and a 200-tree random
forest ~10 ms of which ~1.4 ms is the trees. The functions here do the same arithmetic on
input already known to be a finite 2-D float array of the right width.

They read fitted attributes; tree ensembles run in ONNX Runtime's ``TreeEnsemble`` where it
is installed and faster (:mod:`readyml.predict.tree_ensemble`: gradient boosting on small
batches, binary forests always, other forests on small batches), otherwise gradient
boosting runs in scikit-learn's compiled ``predict_stages``, which is not public API.
:class:`~readyml.predict.Predictor` uses a function here only after it matched
``predict_proba`` on probe rows, and otherwise keeps the public path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import expit, softmax

Array = np.ndarray
ProbaFunction = Callable[[Array], Array]
# Float32 is what scikit-learn's trees compare in; values past its range would become inf.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Batches up to this many rows of gradient boosting go to ONNX Runtime (when installed):
# one call instead of a per-tree overhead wins on small batches, while scikit-learn walks
# each row faster (200 depth-3 trees, alone on a core: 9 against 54 µs for 1 row, 88
# against 94 for 32, 210 against 186 for 64; a loaded server pays the per-tree overhead
# two to three times over, hence the limit above the crossover).
COMPILED_MAX_ROWS = 64
# A forest of more than two classes runs each tree once per class in ONNX Runtime (see
# tree_ensemble), which pays only on small batches (200 trees of ~850 nodes, 3 classes: 31
# against 748 µs for 1 row, 1.5 against 1.7 ms for 32, 11 against 8 ms for 256); a binary
# forest runs each tree once and wins at every size up to 2,048 rows (20 µs against 0.7 ms,
# 0.7 against 2.1 ms, 5.1 against 7.2 ms, 36 against 40 ms).
FOREST_COMPILED_MAX_ROWS = 32
# Largest difference from scikit-learn's predict_proba allowed of ONNX Runtime's at load.
COMPILED_TOLERANCE = 1e-12
# The estimators whose trees run in ONNX Runtime where readyml[onnx] is installed.
TREE_ENSEMBLES = (
    "sklearn.ensemble.ExtraTreesClassifier",
    "sklearn.ensemble.GradientBoostingClassifier",
    "sklearn.ensemble.RandomForestClassifier",
)


def direct_proba(estimator: Any) -> ProbaFunction | None:
    """A function computing ``estimator.predict_proba`` without per-call validation, or None.

    Covers ``LogisticRegression``, ``GradientBoostingClassifier`` (with its default or
    ``"zero"`` initial estimator) and single-output ``RandomForestClassifier`` and
    ``ExtraTreesClassifier``. The function takes a C-ordered float64 array of finite values
    with the estimator's number of columns; anything else must go to ``predict_proba``.
    """
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression

    if isinstance(estimator, LogisticRegression):
        return _logistic(estimator)
    if isinstance(estimator, GradientBoostingClassifier):
        return _gradient_boosting(estimator)
    if isinstance(estimator, RandomForestClassifier | ExtraTreesClassifier):
        return _forest(estimator)
    return None


def _logistic(estimator: Any) -> ProbaFunction | None:
    coef = np.ascontiguousarray(np.asarray(estimator.coef_, dtype=np.float64).T)
    intercept = np.asarray(estimator.intercept_, dtype=np.float64)
    if len(estimator.classes_) > 2:

        def multinomial(data: Array) -> Array:
            return np.asarray(softmax(data @ coef + intercept, axis=1))

        return multinomial
    if coef.shape[1] != 1:
        return None

    def binary(data: Array) -> Array:
        positive = expit((data @ coef)[:, 0] + intercept[0])
        return np.stack([1 - positive, positive], axis=1)

    return binary


def _gradient_boosting(estimator: Any) -> ProbaFunction | None:
    from sklearn.dummy import DummyClassifier

    from readyml.predict.tree_ensemble import boosting_raw_scores

    init = estimator.init_
    if not (isinstance(init, DummyClassifier) and init.strategy == "prior") and init != "zero":
        return None  # an initial model's output depends on the row
    probe = np.zeros((1, estimator.n_features_in_), dtype=np.float32)
    start = np.asarray(estimator._raw_predict_init(probe), dtype=np.float64)[0]
    loss = estimator._loss
    compiled = boosting_raw_scores(estimator)
    if compiled is not None:
        raw_scores = compiled
        if not _agrees(lambda data: loss.predict_proba(raw_scores(data) + start), estimator):
            compiled = None
    try:
        from sklearn.ensemble._gradient_boosting import predict_stages
    except ImportError:  # moved in a later scikit-learn
        predict_stages = None
    if compiled is None and predict_stages is None:
        return None
    stages = estimator.estimators_
    rate = float(estimator.learning_rate)

    def staged(data: Array) -> Array:
        raw = np.empty((len(data), len(start)), dtype=np.float64)
        raw[:] = start
        predict_stages(stages, _float32(data), rate, raw)
        return raw

    def boosted(data: Array) -> Array:
        if compiled is not None and (len(data) <= COMPILED_MAX_ROWS or predict_stages is None):
            raw = compiled(data) + start
        else:
            raw = staged(data)
        return np.asarray(loss.predict_proba(raw))

    return boosted


def _forest(estimator: Any) -> ProbaFunction | None:
    from readyml.predict.tree_ensemble import forest_proba

    if estimator.n_outputs_ != 1:
        return None
    trees = [tree.tree_ for tree in estimator.estimators_]
    classes = int(estimator.n_classes_)
    compiled_max_rows = FOREST_COMPILED_MAX_ROWS if classes > 2 else None

    def looped(data: Array) -> Array:
        rows = _float32(data)
        total = np.zeros((len(rows), classes), dtype=np.float64)
        for tree in trees:
            total += tree.predict(rows)[:, :classes]
        total /= len(trees)
        return total

    compiled = forest_proba(estimator)
    if compiled is not None and not _agrees(compiled, estimator):
        compiled = None

    def averaged(data: Array) -> Array:
        if compiled is not None and (compiled_max_rows is None or len(data) <= compiled_max_rows):
            return compiled(data)
        return looped(data)

    return averaged


def _agrees(compiled: ProbaFunction, estimator: Any) -> bool:
    """Whether ``compiled`` gives ``predict_proba``'s numbers on probe rows: a runtime that
    sums in single precision must not cost the model its whole direct path."""
    probe = probe_rows(int(estimator.n_features_in_))
    try:
        found = compiled(probe)
    except Exception:  # any failure of the runtime means: not this path
        return False
    return bool(np.abs(found - estimator.predict_proba(probe)).max() <= COMPILED_TOLERANCE)


def _float32(data: Array) -> Array:
    return np.ascontiguousarray(data, dtype=np.float32)


def fits_float32(data: Array) -> bool:
    """Whether every value keeps a finite float32 form (what the tree functions compare)."""
    return bool(np.abs(data).max(initial=0.0) <= FLOAT32_MAX)


def probe_rows(columns: int) -> Array:
    """Rows on which a fast path must match the model: an even sweep and spreads of scale."""
    sweep = np.linspace(-1.0, 1.0, 4 * columns).reshape(4, columns)
    spread = np.random.default_rng(0).standard_normal((12, columns))
    return np.vstack([sweep, spread, spread * 10.0, spread * 1000.0])
