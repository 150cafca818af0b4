"""Which readyml extra an export of a version asks for."""

from __future__ import annotations

from readyml.registry.requirements import extra_requirements, flavor_extras


def test_an_extra_is_asked_for_only_when_it_installs_the_model_s_own_libraries() -> None:
    assert extra_requirements("xgboost") == {"xgboost-cpu"}
    saved_with_cpu = {"xgboost-cpu": "3.2.0", "xgboost": "unknown", "numpy": "2.4.6"}
    assert flavor_extras({"flavor": "xgboost", "versions": saved_with_cpu}) == ["xgboost"]
    # Saved with the `xgboost` distribution: readyml[xgboost] would add xgboost-cpu beside it,
    # two distributions writing one package; its own pin is enough.
    saved_with_full = {"xgboost": "3.2.0", "xgboost-cpu": "unknown", "numpy": "2.4.6"}
    assert flavor_extras({"flavor": "xgboost", "versions": saved_with_full}) == []
    assert flavor_extras({"flavor": "torch", "versions": {"torch": "2.13.0+cpu"}}) == ["torch"]
    # The onnx extra also installs the converters, which loading does not need.
    runtime = {"onnxruntime": "1.32.0", "onnx": "1.23.2", "numpy": "2.4.6"}
    assert flavor_extras({"flavor": "onnx", "versions": runtime}) == []
    assert flavor_extras({"flavor": "sklearn", "versions": {"scikit-learn": "1.9.1"}}) == []
