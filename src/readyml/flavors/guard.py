"""A PyTorch training guard: stop at the first NaN/inf loss; bound weights and dead ReLUs.

The torch flavor runs it in every training loop (ML Test Score monitor-5: the model is
numerically stable); monitoring re-exports it for users' own training code.
"""

from __future__ import annotations

import math
from typing import Any

from readyml.errors import NumericalInstability


class TrainingGuard:
    """PyTorch training hook: stop at the first NaN/inf loss; check weights and dead ReLUs.

    Call :meth:`after_step` with each batch's loss and :meth:`after_epoch` with the module
    and a probe batch. Either raises :class:`NumericalInstability` naming the problem.

    Args:
        max_abs_weight: largest absolute weight allowed.
        max_dead_share: largest share of ReLU units that are zero for the whole probe batch.

    Example:
        >>> guard = TrainingGuard()
        >>> guard.after_step(0.5)
        >>> guard.after_step(float("nan"))
        Traceback (most recent call last):
        ...
        readyml.errors.NumericalInstability: training loss is nan at step 2; ...
    """

    def __init__(self, *, max_abs_weight: float = 1e4, max_dead_share: float = 0.9) -> None:
        self.max_abs_weight = max_abs_weight
        self.max_dead_share = max_dead_share
        self.steps_ = 0
        self.report_: dict[str, Any] = {}

    def after_step(self, loss: float) -> None:
        """Record one step's loss; raise on NaN or infinity."""
        self.steps_ += 1
        value = float(loss)
        if not math.isfinite(value):
            raise NumericalInstability(f"training loss is {value} at step {self.steps_}; stopped")

    def after_epoch(self, module: Any, probe: Any) -> dict[str, Any]:
        """Check weight bounds and dead ReLU units on ``probe`` (a tensor batch)."""
        import torch

        largest = 0.0
        for name, parameter in module.named_parameters():
            data = parameter.detach()
            if not bool(torch.isfinite(data).all()):
                raise NumericalInstability(f"weights of {name} hold NaN or infinity")
            largest = max(largest, float(data.abs().max()))
        dead: dict[str, float] = {}
        hooks = []

        def watch(layer_name: str) -> Any:
            def hook(_module: Any, _inputs: Any, output: Any) -> None:
                flat = output.detach().reshape(output.shape[0], -1)
                dead[layer_name] = float((flat <= 0).all(dim=0).float().mean())

            return hook

        for layer_name, layer in module.named_modules():
            if isinstance(layer, torch.nn.ReLU):
                hooks.append(layer.register_forward_hook(watch(layer_name)))
        try:
            with torch.no_grad():
                module(probe)
        finally:
            for handle in hooks:
                handle.remove()
        self.report_ = {"max_abs_weight": largest, "dead_relu_share": dead}
        if largest > self.max_abs_weight:
            raise NumericalInstability(
                f"largest weight {largest:.3g} exceeds the bound {self.max_abs_weight:g}"
            )
        for layer_name, share in dead.items():
            if share > self.max_dead_share:
                raise NumericalInstability(
                    f"ReLU {layer_name}: {share:.0%} of units dead on the probe batch; "
                    f"at most {self.max_dead_share:.0%} allowed"
                )
        return self.report_
