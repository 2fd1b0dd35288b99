"""gradlab: the helper package of the course *Gradients by Hand*.

Core (imported eagerly): :func:`compare`, :func:`compare_tensors`, :func:`numerical_grad`.
Topic modules (import them by name): ``gradlab.exercises``, ``gradlab.plotting`` and the
modules the chapters add.
"""
from .checking import Comparison, compare, compare_tensors
from .numerical import numerical_grad

__all__ = ["Comparison", "compare", "compare_tensors", "numerical_grad"]
__version__ = "0.1.0"
