"""gradlab: the helper package of the course *Gradients by Hand*.

One idea per module:

- ``gradlab.checking``: :func:`compare` (a manual gradient against ``tensor.grad``) and
  :func:`compare_tensors`, which print one machine-stable row and raise on a mismatch;
- ``gradlab.numerical``: :func:`numerical_grad`, central finite differences in float64;
- ``gradlab.graph``: :func:`graph_structure` and :func:`draw_graph`, the live autograd graph;
- ``gradlab.jacobian``: :func:`jacobian_by_rows` (VJPs) and :func:`jacobian_by_columns` (JVPs);
- ``gradlab.forward``: dual numbers, :func:`jvp_via_vjp`, Hessian-vector products (chapter 12);
- ``gradlab.functions``: reference ``torch.autograd.Function`` classes (Add, Mul, Exp, ReLU, ...);
- ``gradlab.gradient_check``: :func:`check_function`, gradcheck/gradgradcheck as one stable row;
- ``gradlab.function_cases``: :func:`check_function_cases`, a learner's Function judged on fresh
  cases (what ``check_function(Fn, cases=..., reference=...)`` runs);
- ``gradlab.bptt``: :func:`rnn_forward` and :func:`rnn_backward`, hand-written BPTT;
- ``gradlab.layers``: layers and losses with hand-written forward and backward, and a small MLP;
- ``gradlab.engine``: a small reverse-mode engine, scalar :class:`Value` and :class:`Tensor`
  (chapters 08 and 09), each with ``.data``, ``.grad`` and ``.backward()``;
- ``gradlab.exercises``: self-checks that do not reveal the answer; :func:`check_code` judges a
  learner's function on fresh cases against autograd;
- ``gradlab.rules``: :class:`Rules`, what an exercise forbids (autograd, float64, a big tensor, a
  named function), and the watch that sees a function break them;
- ``gradlab.data``: :func:`make_spirals`, the seeded toy data set of chapters 07 and 09;
- ``gradlab.notebook``: :func:`readable_errors`, one-line expected errors and the learner's own
  frames for a bug in their code;
- ``gradlab.plotting``: the book's figure style.

Importing gradlab imports torch, but not matplotlib (only drawing and plotting functions do).
"""
from .bptt import RNNGrads, RNNTrace, rnn_backward, rnn_forward
from .checking import Comparison, compare, compare_tensors
from .engine import Tensor, Value
from .gradient_check import GradcheckReport, check_function
from .graph import GraphStructure, draw_graph, graph_structure
from .jacobian import jacobian_by_columns, jacobian_by_rows
from .numerical import numerical_grad

__all__ = [
    "Comparison", "compare", "compare_tensors", "numerical_grad",
    "GraphStructure", "graph_structure", "draw_graph",
    "jacobian_by_rows", "jacobian_by_columns",
    "GradcheckReport", "check_function",
    "RNNTrace", "RNNGrads", "rnn_forward", "rnn_backward",
    "Value", "Tensor",
]
__version__ = "0.1.0"
