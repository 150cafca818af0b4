"""The click command class every ``readyml`` command uses."""

from __future__ import annotations

import typer
from typer.core import TyperCommand, TyperOption

try:  # typer 0.20 and later carry their own copy of click
    from typer._click.core import Context
except ImportError:  # pragma: no cover - older typer on click itself
    from click.core import Context  # type: ignore[assignment]


class OnceOptionsCommand(TyperCommand):
    """A command that refuses a one-value option given twice.

    Click keeps the last value silently, so ``--quantize int8 --quantize torch-int8`` would
    quantize once, with the second method, and say nothing of the first.
    """

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        _, _, order = self.make_parser(ctx).parse_args(args=list(args))
        seen: set[str | None] = set()
        for param in order:
            if not isinstance(param, TyperOption) or param.multiple or param.count or param.is_flag:
                continue
            if param.name in seen:
                ctx.fail(f"option {param.opts[0]}: expected once, found it given more than once")
            seen.add(param.name)
        return super().parse_args(ctx, args)


def use_for_every_command(app: typer.Typer) -> None:
    """Make every command of ``app`` and of its sub-apps an :class:`OnceOptionsCommand`."""
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = OnceOptionsCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            use_for_every_command(group.typer_instance)


__all__ = ["OnceOptionsCommand", "use_for_every_command"]
