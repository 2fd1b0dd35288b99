"""The autograd graph behind a tensor: as data (:func:`graph_structure`) and as a picture (:func:`draw_graph`).

Both walk ``root.grad_fn`` and its ``next_functions`` back to the leaves, the same path
``backward()`` takes. Nodes are

- ``'leaf'``: a leaf tensor that requires grad (an ``AccumulateGrad`` node in the graph);
- ``'op'``: an operation recorded by autograd (``MulBackward0`` is shown as ``mul``);
- ``'output'``: the operation that produced ``root`` itself.

Inputs that do not require grad (constants, data) are not part of the graph and do not appear.
The walk, the node ids and the layout depend only on the graph, so they are the same on every run.
Drawing needs matplotlib only (no graphviz or other system programs).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from ._graph_drawing import _crossings, _layout, _render  # noqa: F401 (the tests read the layout)
from ._validate import require_tensor, shape_str

__all__ = ["GraphNode", "GraphEdge", "GraphStructure", "graph_structure", "draw_graph",
           "backward_structure", "draw_backward_graph"]

#: Readable names for operations whose snake_case class name reads worse than the math.
_OP_ALIASES = {"maximum": "max", "minimum": "min"}



@dataclass(frozen=True)
class GraphNode:
    """One node of the graph.

    ``id`` is ``"n0"``, ``"n1"``, ... in topological order (every node after its inputs);
    ``kind`` is ``'leaf'``, ``'op'`` or ``'output'``; ``label`` is what a drawing shows
    (``"x"``, ``"mul"``, ``"q = add"``); ``op`` is the readable operation name (``None`` for a
    leaf); ``fn_name`` the class name of the autograd node (``"MulBackward0"``,
    ``"AccumulateGrad"``); ``depth`` the length of the longest path from a leaf to this node.
    ``tensor`` is the tensor the node stands for, when it is known (every leaf, ``root``, and the
    non-leaf tensors given in ``names``), else ``None``.
    """

    id: str
    kind: str
    label: str
    op: str | None
    name: str | None
    fn_name: str
    depth: int
    tensor: torch.Tensor | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class GraphEdge:
    """A forward edge: the output of node ``src`` is input number ``slot`` of node ``dst``.

    A tensor used twice by one operation (``x * x``) gives two edges with different slots.
    """

    src: str
    dst: str
    slot: int


@dataclass(frozen=True)
class GraphStructure:
    """Nodes (inputs before the operations that use them) and edges (sorted by ``dst``, then ``slot``)."""

    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]

    def node(self, node_id: str) -> GraphNode:
        """The node with id ``node_id``."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(f"no node with id {node_id!r}; ids are {', '.join(n.id for n in self.nodes)}.")

    def inputs(self, node_id: str) -> list[str]:
        """Ids of the nodes feeding ``node_id``, in argument order (a repeated input appears twice)."""
        self.node(node_id)
        return [e.src for e in self.edges if e.dst == node_id]

    def __str__(self) -> str:
        width = max(len(n.label) for n in self.nodes)
        lines = []
        for n in self.nodes:
            ins = self.inputs(n.id)
            arrow = f"  <- {', '.join(ins)}" if ins else ""
            lines.append(f"{n.id:<4} {n.kind:<6}  {n.label:<{width}}{arrow}".rstrip())
        return "\n".join(lines)


def _readable_op_name(fn_name: str) -> str:
    """``"MulBackward0"`` -> ``"mul"``, ``"LogSoftmaxBackward0"`` -> ``"log_softmax"``, ``"MaximumBackward0"`` -> ``"max"``."""
    base = re.sub(r"Backward\d*$", "", fn_name.rsplit("::", 1)[-1]) or fn_name
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", base).lower()
    return _OP_ALIASES.get(snake, snake)


def _check_names(names) -> dict[str, torch.Tensor]:
    if names is None:
        return {}
    if not isinstance(names, dict):
        raise TypeError(
            f"names must be a dict mapping a name to a tensor, e.g. {{'x': x, 'q': q}}, got {type(names).__name__}."
        )
    seen: dict[int, str] = {}
    for key, value in names.items():
        if not isinstance(key, str):
            raise TypeError(f"names: every key must be a string (the label to show), got {key!r} ({type(key).__name__}).")
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"names[{key!r}] must be a torch.Tensor from the graph, got {type(value).__name__}. "
                f"Pass the tensor itself (not a number or .item()), e.g. names={{{key!r}: {key}}}."
            )
        if id(value) in seen:
            raise ValueError(
                f"names: {seen[id(value)]!r} and {key!r} are the same tensor; give each tensor one name."
            )
        seen[id(value)] = key
    return dict(names)


class _NoneInput:
    """Stands for one ``None`` entry of a node's ``next_functions``: an input needing no gradient."""

    next_functions = ()


def graph_structure(root: torch.Tensor, names: dict[str, torch.Tensor] | None = None) -> GraphStructure:
    """Walk the autograd graph that ends at ``root`` and return its nodes and edges as data.

    ``root``: a tensor of any shape with a ``grad_fn`` (or a leaf with ``requires_grad=True``, a
    graph of one node). ``names``: ``{"x": x, "q": q, ...}``; tensors are matched by identity, leaves
    through their ``AccumulateGrad`` node, non-leaves through their ``grad_fn``. Named tensors that
    are not in the graph are ignored. Raises ``ValueError`` if ``root`` has no graph.
    """
    return _walk(root, names, keep_none=False, what="graph_structure")


def backward_structure(root: torch.Tensor, names: dict[str, torch.Tensor] | None = None) -> GraphStructure:
    """The graph ``backward()`` runs, as data: the nodes of :func:`graph_structure`, plus ``None``.

    Like :func:`graph_structure`, but every input that needs no gradient (the ``None`` entries of a
    node's ``next_functions``: a constant, data) is a node of kind ``'none'`` (label ``"None"``,
    ``fn_name`` ``"None"``), one per entry. Op and output nodes are labelled with their autograd
    class name (``"MulBackward0"``), leaves with ``"AccumulateGrad"``; ``name`` is the name given in
    ``names``. Edges keep the forward direction (``src`` feeds ``dst``); the gradient flows from
    ``dst`` to ``src``.
    """
    return _walk(root, names, keep_none=True, what="backward_structure")


def _walk(root, names, *, keep_none: bool, what: str) -> GraphStructure:
    require_tensor(root, f"{what}: root")
    named = _check_names(names)
    if root.grad_fn is None and not root.requires_grad:
        raise ValueError(
            f"{what}: root (shape {shape_str(root)}) has no graph: it has no grad_fn and does not "
            f"require grad, so autograd recorded nothing. Create the inputs with requires_grad=True "
            f"(e.g. x = torch.tensor(2.0, requires_grad=True)), compute root from them outside torch.no_grad() "
            f"and without .detach(), then pass root again."
        )
    leaf_names = {id(t): k for k, t in named.items() if t.grad_fn is None}
    # (grad_fn, output_nr, name, tensor) of every named non-leaf; holding the grad_fn objects keeps
    # their id() valid for the whole walk.
    named_fns = [(t.grad_fn, t.output_nr, k, t) for k, t in named.items() if t.grad_fn is not None]

    if root.grad_fn is None:  # a leaf that requires grad: the whole graph is that leaf
        name = leaf_names.get(id(root))
        label = "AccumulateGrad" if keep_none else (name or "leaf")
        node = GraphNode("n0", "leaf", label, None, name, "AccumulateGrad", 0, root)
        return GraphStructure((node,), ())

    # Iterative depth-first walk from the root; a node is emitted after all its inputs (post-order),
    # which gives a topological order that follows the program's order of evaluation.
    root_fn = root.grad_fn
    order: list = []
    index: dict[int, int] = {}
    seen: dict[int, object] = {id(root_fn): root_fn}  # holding every node keeps its id() unique
    raw_edges: list[tuple[int, int, int]] = []  # (id of src node, id of dst node, slot)
    stack = [(root_fn, 0)]
    while stack:
        fn, i = stack.pop()
        nexts = getattr(fn, "next_functions", ()) or ()
        if i < len(nexts):
            stack.append((fn, i + 1))
            child = nexts[i][0]
            if child is None and keep_none:
                child = _NoneInput()
            if child is not None:  # None: an input that does not require grad
                raw_edges.append((id(child), id(fn), i))
                if id(child) not in seen:
                    seen[id(child)] = child
                    stack.append((child, 0))
            continue
        index[id(fn)] = len(order)  # all inputs done: emit
        order.append(fn)

    ids = [f"n{i}" for i in range(len(order))]
    depth = [0] * len(order)
    inputs_of: list[list[int]] = [[] for _ in order]
    for src, dst, _slot in raw_edges:
        inputs_of[index[dst]].append(index[src])
    for i in range(len(order)):
        if inputs_of[i]:
            depth[i] = 1 + max(depth[j] for j in inputs_of[i])
    for src, dst, _slot in raw_edges:  # a None input sits just left of the node that has it
        if isinstance(order[index[src]], _NoneInput):
            depth[index[src]] = depth[index[dst]] - 1

    root_index = index[id(root_fn)]
    nodes = []
    for i, fn in enumerate(order):
        if isinstance(fn, _NoneInput):
            nodes.append(GraphNode(ids[i], "none", "None", None, None, "None", depth[i], None))
            continue
        fn_name = type(fn).__name__
        if fn_name == "AccumulateGrad":
            tensor = fn.variable
            name = leaf_names.get(id(tensor))
            label = fn_name if keep_none else (name or "leaf")
            nodes.append(GraphNode(ids[i], "leaf", label, None, name, fn_name, depth[i], tensor))
            continue
        op = _readable_op_name(fn_name)
        mine = sorted((nr, k, t) for g, nr, k, t in named_fns if g is fn)
        name = ", ".join(k for _nr, k, _t in mine) or None
        tensor = mine[0][2] if len(mine) == 1 else None  # a multi-output op has no single value
        kind = "output" if i == root_index else "op"
        if kind == "output":
            tensor = root
        label = fn_name if keep_none else (f"{name} = {op}" if name else op)
        nodes.append(GraphNode(ids[i], kind, label, op, name, fn_name, depth[i], tensor))

    edges = sorted((GraphEdge(ids[index[s]], ids[index[d]], slot) for s, d, slot in raw_edges),
                   key=lambda e: (int(e.dst[1:]), e.slot))
    return GraphStructure(tuple(nodes), tuple(edges))


def _format_number(v: float) -> str:
    text = f"{v:.3g}"
    return "0" if text in ("-0", "0") else text.replace("-", "\u2212")


def _format_tensor(t: torch.Tensor | None) -> str | None:
    if t is None:
        return None
    t = t.detach()
    if t.numel() == 1:
        return _format_number(float(t.reshape(())))
    if t.numel() <= 4:
        return "[" + ", ".join(_format_number(float(v)) for v in t.reshape(-1).tolist()) + "]"
    return f"shape {shape_str(t)}"


def _node_grad(node: GraphNode) -> torch.Tensor | None:
    t = node.tensor
    if t is None or not (t.is_leaf or t.retains_grad):
        return None  # reading .grad of a non-retained non-leaf only earns a warning
    return t.grad


def draw_graph(root: torch.Tensor, names: dict[str, torch.Tensor] | None = None, *,
               show_values: bool = False, show_grads: bool = False, ax=None, title: str | None = None):
    """Draw the autograd graph behind ``root``, left to right, and return the matplotlib Figure.

    Leaves are on the left, ``root``'s operation on the right; a node's column is the longest path
    from a leaf to it. ``show_values`` writes each known tensor's value (leaves, ``root`` and the
    tensors in ``names``) under its label, ``show_grads`` its ``.grad`` (leaves and non-leaves that
    called ``retain_grad()``; nothing when ``.grad`` is None), to 3 significant digits; tensors of
    more than 4 elements show their shape. Draws into ``ax`` if given, else into a new figure sized
    to the graph (in a notebook, end the cell with ``plt.show()``).
    """
    structure = graph_structure(root, names)
    for flag, value in (("show_values", show_values), ("show_grads", show_grads)):
        if not isinstance(value, bool):
            raise TypeError(f"draw_graph: {flag} must be True or False, got {value!r}.")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"draw_graph: title must be a string or None, got {type(title).__name__}.")

    from matplotlib.axes import Axes

    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"draw_graph: ax must be a matplotlib Axes (e.g. from plt.subplots()), got {type(ax).__name__}.")

    # Each box: the tensor's name (bold) over the operation, then its value and gradient.
    texts: dict[str, list[tuple[str, str]]] = {}
    for n in structure.nodes:
        if n.kind == "leaf" or not n.name:
            lines = [(n.name or n.label, "label")]
        else:
            lines = [(n.name, "label"), (n.op, "op")]
        value = _format_tensor(n.tensor) if show_values else None
        if value is not None:
            lines.append((f"value {value}", "value"))
        grad = _format_tensor(_node_grad(n)) if show_grads else None
        if grad is not None:
            lines.append((f"grad {grad}", "grad"))
        texts[n.id] = lines
    return _render(structure, texts, ax=ax, title=title, backward=False)


def draw_backward_graph(root: torch.Tensor, names: dict[str, torch.Tensor] | None = None, *,
                        ax=None, title: str | None = None):
    """Draw the graph ``backward()`` runs from ``root``, and return the matplotlib Figure.

    One box per node of :func:`backward_structure`: each backward node by its class name
    (``MulBackward0``), ``AccumulateGrad`` for each leaf that requires grad and ``None`` for each
    input that needs none, with arrows from a node to its ``next_functions``, the way the gradient
    flows (right to left). A tensor named in ``names`` is written under its node (``z.grad_fn``;
    ``into x.grad`` for a leaf). Draws into ``ax`` if given, else into a new figure.
    """
    structure = backward_structure(root, names)
    if title is not None and not isinstance(title, str):
        raise TypeError(f"draw_backward_graph: title must be a string or None, got {type(title).__name__}.")
    texts: dict[str, list[tuple[str, str]]] = {}
    for n in structure.nodes:
        lines = [(n.label, "label")]
        if n.name and n.kind == "leaf":
            lines.append((f"into {n.name}.grad", "op"))
        elif n.name:
            lines.append((f"{n.name}.grad_fn", "op"))
        texts[n.id] = lines
    return _render(structure, texts, ax=ax, title=title, backward=True)
