"""A small reverse-mode autograd engine: scalar :class:`Value` and :class:`Tensor` (chapters 08 and 09).

One module per chapter: :mod:`gradlab.engine.value` holds chapter 08's ``Value`` and the graph walk
both classes share (:func:`topological_order`); :mod:`gradlab.engine.tensor` holds chapter 09's
``Tensor``, :func:`unbroadcast` and the fused :func:`cross_entropy`. Import them from here:
``from gradlab.engine import Tensor, Value``.

One design for both classes
---------------------------
* Every result of an operation is a *node*: it keeps its ``data``, the nodes it was computed from
  (``_inputs``) and its *local backward rule* ``_backward``, a function that takes the gradient of
  the node (``g``, the shape of ``data``) and returns one gradient per input (``None`` for an input
  that needs none). A node built directly from data (a *leaf*) has no inputs and no rule.
* ``root.backward()`` orders the graph so that every node comes after all the nodes computed from
  it (reverse topological order), seeds ``root.grad`` with 1 and hands each node's gradient to its
  rule, *adding* what the rule returns to each input's ``grad``: a node used twice (``a + a``) gets
  the sum of both contributions.
* Leaves accumulate over calls, like PyTorch's ``.grad``: call :meth:`zero_grad` (or set
  ``grad`` back to 0 / ``None``) between training steps. Interior nodes are reset at the start of
  every ``backward()``, so a second call adds exactly the same gradient to the leaves again.

``Value`` holds a Python float and computes as PyTorch does on a float64 scalar, infinities and
NaN included (``Value(0.0).log()`` is ``-inf``, ``Value(0.0) ** 0.5`` has slope ``inf``); its
``grad`` starts at 0.0. ``Tensor`` holds a floating-point ``torch.Tensor`` and runs PyTorch kernels
on it with autograd never involved (its data never requires grad); its ``grad`` starts at
``None``. Elementwise operations broadcast like PyTorch's, and their backward rules sum the
gradient back to each input's shape (:func:`unbroadcast`). Like PyTorch's version counter, a
``Tensor`` node remembers the version of every tensor its rule saved, and ``backward()`` refuses,
before it changes any gradient, a graph whose saved data was changed in place since.
"""
from .tensor import Tensor, cross_entropy, unbroadcast
from .value import Value, topological_order

__all__ = ["Value", "Tensor", "unbroadcast", "cross_entropy", "topological_order"]
