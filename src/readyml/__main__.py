"""``python -m readyml``: the ``readyml`` command."""

from readyml.cli import main

main()
