"""The data feedback loop: capture production examples for review, import their labels as
versioned production datasets, fold them back into training, and retrain on alerts.

See ``docs/feedback-loop.md``.
"""
