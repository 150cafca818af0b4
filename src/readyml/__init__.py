"""readyml: from training data to a monitored production service, with evidence that it is
production-ready (the ML Test Score)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
