"""Gradient-boosted trees run by ONNX Runtime in double precision, for small batches.

scikit-learn's ``predict_stages`` walks each tree in compiled code, but per tree it looks up
the estimator's ``tree_`` and checks the input's buffer again: for 200 depth-3 trees that is
~60 µs a call in isolation, whatever the batch, and 2–3 times that inside a loaded server
(``perf``: more than the tree walks themselves at 32 rows). ONNX Runtime's ``TreeEnsemble``
(``ai.onnx.ml`` opset 5) takes every tree in one call, and with double thresholds, leaf
weights and output it sums the same numbers as scikit-learn: on the input cast to float32
first, as scikit-learn compares, results agree to ~1e-15.

Used by :mod:`readyml.predict.direct` when ``onnx`` and ``onnxruntime`` are installed
(``readyml[onnx]``); without them, or if the runtime refuses the graph, it is None and the
scikit-learn path serves.
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
        self.features: list[int] = []
        self.splits: list[float] = []
        self.true_ids: list[int] = []
        self.true_is_leaf: list[int] = []
        self.false_ids: list[int] = []
        self.false_is_leaf: list[int] = []
        self.leaf_targets: list[int] = []
        self.leaf_weights: list[float] = []

    def add(self, tree: Any, target: int, scale: float) -> None:
        """Add one regression tree whose leaves add ``scale * value`` to ``target``."""
        left, right = tree.children_left, tree.children_right
        values = tree.value[:, 0, 0]
        interior = np.flatnonzero(left >= 0).tolist()
        number: dict[int, tuple[int, int]] = {}  # node -> (index, is_leaf)
        for node in range(tree.node_count):
            if left[node] < 0:
                number[node] = (len(self.leaf_weights), 1)
                self.leaf_weights.append(scale * float(values[node]))
                self.leaf_targets.append(target)
        for offset, node in enumerate(interior):
            number[node] = (len(self.features) + offset, 0)
        self.roots.append(number[0][0])
        for node in interior:
            self.features.append(int(tree.feature[node]))
            self.splits.append(float(tree.threshold[node]))
            true_id, true_leaf = number[int(left[node])]
            false_id, false_leaf = number[int(right[node])]
            self.true_ids.append(true_id)
            self.true_is_leaf.append(true_leaf)
            self.false_ids.append(false_id)
            self.false_is_leaf.append(false_leaf)


def boosting_raw_scores(estimator: Any) -> RawScores | None:
    """A function giving a fitted ``GradientBoostingClassifier``'s summed tree outputs,
    ``(rows, K)``, without its initial score; None if ONNX Runtime cannot serve it here."""
    try:
        import onnxruntime
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    stages = estimator.estimators_
    outputs = stages.shape[1]
    trees = [stage.tree_ for stage in stages.ravel()]
    if any(tree.node_count < 2 for tree in trees):
        return None  # a lone leaf has no interior node to be a root
    ensemble = _Ensemble()
    rate = float(estimator.learning_rate)
    for index, tree in enumerate(trees):
        ensemble.add(tree, index % outputs, rate)
    node = helper.make_node(
        "TreeEnsemble",
        ["X"],
        ["Y"],
        domain="ai.onnx.ml",
        aggregate_function=_SUM,
        post_transform=_NO_TRANSFORM,
        n_targets=outputs,
        tree_roots=ensemble.roots,
        nodes_featureids=ensemble.features,
        nodes_splits=numpy_helper.from_array(np.array(ensemble.splits, dtype=np.float64)),
        nodes_modes=numpy_helper.from_array(
            np.full(len(ensemble.features), _BRANCH_LEQ, dtype=np.uint8)
        ),
        nodes_truenodeids=ensemble.true_ids,
        nodes_trueleafs=ensemble.true_is_leaf,
        nodes_falsenodeids=ensemble.false_ids,
        nodes_falseleafs=ensemble.false_is_leaf,
        leaf_targetids=ensemble.leaf_targets,
        leaf_weights=numpy_helper.from_array(np.array(ensemble.leaf_weights, dtype=np.float64)),
    )
    columns = int(estimator.n_features_in_)
    graph = helper.make_graph(
        [node],
        "readyml_boosting",
        [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, columns])],
        [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [None, outputs])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)]
    )
    options = onnxruntime.SessionOptions()
    # One thread: batches already run one at a time on the server's inference worker, and
    # idle pool threads would spin on the cores the event loop needs.
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
