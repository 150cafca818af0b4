"""Tree ensembles run by ONNX Runtime in double precision, in one call a batch.

scikit-learn walks each tree in compiled code but reaches every tree from Python: a
forest's direct path calls each tree's ``predict`` (200 trees: 200 calls), and gradient
boosting's ``predict_stages`` looks up each estimator's ``tree_`` and checks the input's
buffer again per tree: for 200 depth-3 trees ~55 µs a call alone on a core, whatever the
batch, and two to three times that inside a loaded server (``perf``: more than the tree
walks themselves at 32 rows). ONNX Runtime's ``TreeEnsemble`` (``ai.onnx.ml`` opset 5) takes
every tree in one call, and with double thresholds, leaf weights and output it sums the same
numbers as scikit-learn: on the input cast to float32 first, as scikit-learn compares,
results agree to ~1e-15.

Used by :mod:`readyml.predict.direct` when ``onnx`` and ``onnxruntime`` are installed
(``readyml[onnx]``); without them, or if the runtime refuses the graph, the functions here
return None and scikit-learn's path serves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Array = np.ndarray
RawScores = Callable[[Array], Array]
# ai.onnx.ml TreeEnsemble attribute values.
_SUM = 1
_NO_TRANSFORM = 0
_BRANCH_LEQ = 0


class _Ensemble:
    """Trees flattened into ``TreeEnsemble``'s arrays: interior nodes and leaves apart."""

    def __init__(self) -> None:
        self.roots: list[int] = []
        self.nodes = 0
        self.leaves = 0
        # Per tree: features, splits, true ids, true is-leaf, false ids, false is-leaf.
        self.branches: list[tuple[Array, ...]] = []
        self.leaf_targets: list[Array] = []
        self.leaf_weights: list[Array] = []

    def add(self, tree: Any, target: int, leaf_values: Array) -> None:
        """Add one tree whose leaves add ``leaf_values[node]`` to output ``target``."""
        left, right = tree.children_left, tree.children_right
        is_leaf = left < 0
        leaf_nodes = np.flatnonzero(is_leaf)
        interior = np.flatnonzero(~is_leaf)
        # Each node's number among the leaves or among the interior nodes of the ensemble.
        number = np.empty(len(left), dtype=np.int64)
        number[leaf_nodes] = self.leaves + np.arange(len(leaf_nodes))
        number[interior] = self.nodes + np.arange(len(interior))
        self.leaf_targets.append(np.full(len(leaf_nodes), target, dtype=np.int64))
        self.leaf_weights.append(np.asarray(leaf_values, dtype=np.float64)[leaf_nodes])
        self.leaves += len(leaf_nodes)
        self.roots.append(self.nodes)  # node 0, the root, is the tree's first interior node
        if not len(interior):  # a lone leaf: a root every finite value passes to its leaf
            leaf, yes = number[:1], np.ones(1, dtype=np.int64)
            self.branches.append(
                (np.zeros(1, dtype=np.int64), np.full(1, np.inf), leaf, yes, leaf, yes)
            )
            self.nodes += 1
            return
        true, false = left[interior], right[interior]
        self.branches.append(
            (
                tree.feature[interior].astype(np.int64),
                tree.threshold[interior].astype(np.float64),
                number[true],
                is_leaf[true].astype(np.int64),
                number[false],
                is_leaf[false].astype(np.int64),
            )
        )
        self.nodes += len(interior)

    def compile(self, columns: int, outputs: int) -> RawScores | None:
        """The ensemble as an ONNX Runtime session: float64 rows in, summed outputs out."""
        try:
            import onnxruntime
            from onnx import TensorProto, helper, numpy_helper
        except ImportError:
            return None
        features, splits, true_ids, true_leaves, false_ids, false_leaves = (
            np.concatenate(column) for column in zip(*self.branches, strict=True)
        )
        node = helper.make_node(
            "TreeEnsemble",
            ["X"],
            ["Y"],
            domain="ai.onnx.ml",
            aggregate_function=_SUM,
            post_transform=_NO_TRANSFORM,
            n_targets=outputs,
            tree_roots=self.roots,
            nodes_featureids=features.tolist(),
            nodes_splits=numpy_helper.from_array(splits),
            nodes_modes=numpy_helper.from_array(np.full(self.nodes, _BRANCH_LEQ, dtype=np.uint8)),
            nodes_truenodeids=true_ids.tolist(),
            nodes_trueleafs=true_leaves.tolist(),
            nodes_falsenodeids=false_ids.tolist(),
            nodes_falseleafs=false_leaves.tolist(),
            leaf_targetids=np.concatenate(self.leaf_targets).tolist(),
            leaf_weights=numpy_helper.from_array(np.concatenate(self.leaf_weights)),
        )
        graph = helper.make_graph(
            [node],
            "readyml_trees",
            [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, columns])],
            [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [None, outputs])],
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)],
        )
        options = onnxruntime.SessionOptions()
        # One thread: batches already run one at a time on the server's inference worker,
        # and idle pool threads would spin on the cores the event loop needs.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = onnxruntime.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except Exception:  # an older runtime without TreeEnsemble: keep scikit-learn's path
            return None
        run = session.run

        def raw_scores(data: Array) -> Array:
            # scikit-learn compares float32 features with float64 thresholds.
            as_compared = data.astype(np.float32).astype(np.float64)
            return np.asarray(run(None, {"X": as_compared})[0])

        return raw_scores


def boosting_raw_scores(estimator: Any) -> RawScores | None:
    """A function giving a fitted ``GradientBoostingClassifier``'s summed tree outputs,
    ``(rows, K)``, without its initial score; None if ONNX Runtime cannot serve it here."""
    stages = estimator.estimators_
    outputs = stages.shape[1]
    rate = float(estimator.learning_rate)
    ensemble = _Ensemble()
    for index, stage in enumerate(stages.ravel()):
        tree = stage.tree_
        ensemble.add(tree, index % outputs, tree.value[:, 0, 0] * rate)
    return ensemble.compile(int(estimator.n_features_in_), outputs)


def forest_proba(estimator: Any) -> RawScores | None:
    """A function giving a fitted single-output forest's ``predict_proba``, ``(rows,
    classes)``; None if ONNX Runtime cannot serve it here.

    A leaf of ``TreeEnsemble`` feeds one output, so each tree is added once per class; with
    two classes, once, for the second, the first being its complement (as close to
    scikit-learn's own sum as any two sums of the same fractions: ~1e-16). The trees'
    fractions are summed and the sum divided by the number of trees, as scikit-learn does:
    summing fractions already divided gave 1.0000000000000007 where all trees agree.
    """
    trees = [member.tree_ for member in estimator.estimators_]
    classes = int(estimator.n_classes_)
    targets = [1] if classes == 2 else list(range(classes))
    ensemble = _Ensemble()
    for tree in trees:
        values = tree.value[:, 0, :classes]
        # Each tree's class fractions, as its predict_proba normalises them.
        totals = values.sum(axis=1, keepdims=True)
        values = values / np.where(totals == 0.0, 1.0, totals)
        for output, target in enumerate(targets):
            ensemble.add(tree, output, values[:, target])
    sums = ensemble.compile(int(estimator.n_features_in_), len(targets))
    if sums is None:
        return None
    summed, count = sums, float(len(trees))

    def averaged(data: Array) -> Array:
        # A sum of n fractions of at most 1 is at most n: no rounding takes this past 1.
        proba = summed(data) / count
        if classes != 2:
            return proba
        positive = proba[:, 0]
        return np.stack([1.0 - positive, positive], axis=1)

    return averaged
