"""Model backends behind one small interface (see base.py)."""

from .base import Generation, Model, SamplingParams, load_model  # noqa: F401
