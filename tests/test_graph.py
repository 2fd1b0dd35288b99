"""gradlab.graph: the autograd graph as data (graph_structure) and as a figure (draw_graph)."""
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from gradlab.graph import (  # noqa: E402
    GraphEdge,
    backward_structure,
    draw_backward_graph,
    _crossings,
    _layout,
    _readable_op_name,
    draw_graph,
    graph_structure,
)


def scalar(v, dtype=torch.float32):
    return torch.tensor(v, dtype=dtype, requires_grad=True)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def kinds_and_labels(structure):
    return [(n.kind, n.label) for n in structure.nodes]


def edge_tuples(structure):
    return [(e.src, e.dst, e.slot) for e in structure.edges]


# ---------------------------------------------------------------- structure: nodes and edges

def test_product_has_three_nodes_and_two_edges():
    x, y = scalar(4.0), scalar(-3.0)
    f = x * y
    s = graph_structure(f, {"x": x, "y": y, "f": f})
    assert kinds_and_labels(s) == [("leaf", "x"), ("leaf", "y"), ("output", "f = mul")]
    assert edge_tuples(s) == [("n0", "n2", 0), ("n1", "n2", 1)]
    assert [n.fn_name for n in s.nodes] == ["AccumulateGrad", "AccumulateGrad", "MulBackward0"]
    assert [n.depth for n in s.nodes] == [0, 0, 1]
    assert s.nodes[0].tensor is x and s.nodes[2].tensor is f


def test_sum_times_z_has_five_nodes_and_four_edges():
    x, y, z = scalar(-2.0), scalar(5.0), scalar(-4.0)
    q = x + y
    f = q * z
    s = graph_structure(f, {"x": x, "y": y, "z": z, "q": q})
    assert kinds_and_labels(s) == [("leaf", "x"), ("leaf", "y"), ("op", "q = add"), ("leaf", "z"), ("output", "mul")]
    assert edge_tuples(s) == [("n0", "n2", 0), ("n1", "n2", 1), ("n2", "n4", 0), ("n3", "n4", 1)]
    assert [n.depth for n in s.nodes] == [0, 0, 1, 0, 2]
    assert s.inputs("n4") == ["n2", "n3"]
    assert s.node("n2").tensor is q and s.node("n2").name == "q" and s.node("n2").op == "add"


def test_leaves_match_autograd_on_a_vector_layer():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(3, 2, generator=g, requires_grad=True)
    b = torch.randn(2, generator=g, requires_grad=True)
    x = torch.randn(5, 3, generator=g)  # data: no gradient, so no node
    loss = torch.sigmoid(x @ W + b).sum()
    s = graph_structure(loss, {"W": W, "b": b, "x": x})
    leaves = [n for n in s.nodes if n.kind == "leaf"]
    assert [n.label for n in leaves] == ["W", "b"]
    assert all(n.tensor is t for n, t in zip(leaves, (W, b)))
    # every node's inputs are exactly the non-None entries of its grad_fn's next_functions
    assert s.nodes[-1].fn_name == type(loss.grad_fn).__name__ == "SumBackward0"
    assert len(s.inputs(s.nodes[-1].id)) == sum(f is not None for f, _ in loss.grad_fn.next_functions)


def test_constants_are_not_nodes():
    x = scalar(1.5)
    f = 2 * torch.sigmoid(x) + torch.tensor(3.0)
    s = graph_structure(f)
    assert kinds_and_labels(s) == [("leaf", "leaf"), ("op", "sigmoid"), ("op", "mul"), ("output", "add")]
    assert edge_tuples(s) == [("n0", "n1", 0), ("n1", "n2", 0), ("n2", "n3", 0)]


def test_fork_of_one_tensor_into_two_operations():
    x, y = scalar(3.0), scalar(-4.0)
    f = x * y + x
    s = graph_structure(f, {"x": x, "y": y})
    assert len(s.nodes) == 4  # x appears once although it is used twice
    assert [n.label for n in s.nodes if n.kind == "leaf"] == ["x", "y"]
    x_id = s.nodes[0].id
    out_of_x = [e for e in s.edges if e.src == x_id]
    assert [(s.node(e.dst).op, e.slot) for e in out_of_x] == [("mul", 0), ("add", 1)]


def test_fork_into_one_operation_gives_two_edges():
    x = scalar(3.0)
    s = graph_structure(x * x, {"x": x})
    assert kinds_and_labels(s) == [("leaf", "x"), ("output", "mul")]
    assert s.edges == (GraphEdge("n0", "n1", 0), GraphEdge("n0", "n1", 1))


def test_leaf_root_is_a_graph_of_one_node():
    x = scalar([1.0, 2.0])
    s = graph_structure(x, {"x": x})
    assert kinds_and_labels(s) == [("leaf", "x")] and s.edges == ()


def test_multi_output_operation_joins_the_names():
    x = scalar([1.0, 2.0])
    a, b = (2 * x).unbind()
    s = graph_structure(a * b, {"a": a, "b": b})
    unbind = [n for n in s.nodes if n.op == "unbind"]
    assert len(unbind) == 1 and unbind[0].label == "a, b = unbind" and unbind[0].tensor is None


def test_deep_chain_needs_no_recursion():
    h = scalar(0.5, torch.float64)
    out = h
    for _ in range(3000):
        out = out * 1.0001
    s = graph_structure(out)
    assert len(s.nodes) == 3001 and len(s.edges) == 3000
    assert s.nodes[-1].depth == 3000


def test_readable_op_names():
    assert _readable_op_name("MulBackward0") == "mul"
    assert _readable_op_name("AddBackward1") == "add"
    assert _readable_op_name("LogSoftmaxBackward0") == "log_softmax"
    assert _readable_op_name("MaximumBackward0") == "max"
    assert _readable_op_name("MmBackward0") == "mm"
    assert _readable_op_name("MyReluBackward") == "my_relu"  # a custom Function's node
    assert _readable_op_name("LSTMCellBackward") == "lstm_cell"
    assert _readable_op_name("torch::autograd::CopySlices") == "copy_slices"


def test_str_lists_nodes_and_inputs():
    x, y, z = scalar(-2.0), scalar(5.0), scalar(-4.0)
    q = x + y
    f = q * z
    text = str(graph_structure(f, {"x": x, "y": y, "z": z, "q": q, "f": f}))
    assert text.splitlines() == [
        "n0   leaf    x",
        "n1   leaf    y",
        "n2   op      q = add  <- n0, n1",
        "n3   leaf    z",
        "n4   output  f = mul  <- n2, n3",
    ]


def test_structure_is_the_same_on_every_call():
    x, y, z, w = scalar(3.0), scalar(-4.0), scalar(2.0), scalar(-1.0)
    f = 2 * (x * y + torch.maximum(z, w))
    names = {"x": x, "y": y, "z": z, "w": w}
    first, second = graph_structure(f, names), graph_structure(f, names)
    assert first == second
    assert _layout(first) == _layout(second)


def test_structure_and_layout_are_the_same_in_fresh_processes():
    # "The same on every run": nothing may depend on id() values, hashing or dict order of a process.
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from gradlab.graph import graph_structure, _layout\n"
        "x, y, z, w = (torch.tensor(v, requires_grad=True) for v in (3.0, -4.0, 2.0, -1.0))\n"
        "q = x * y\n"
        "f = 2 * (q + torch.maximum(z, w)) + torch.sigmoid(x) * q\n"
        "s = graph_structure(f, {'x': x, 'y': y, 'z': z, 'w': w, 'q': q})\n"
        "print(s)\n"
        "print(_layout(s))\n"
    )
    outputs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**__import__("os").environ, "PYTHONHASHSEED": seed}).stdout
        for seed in ("0", "12345")
    }
    assert len(outputs) == 1
    assert "q = mul" in outputs.pop()


# ---------------------------------------------------------------- layout

def test_layout_columns_are_longest_paths_and_rows_do_not_collide():
    x, y = scalar(3.0), scalar(-4.0)
    sx, sy = torch.sigmoid(x), torch.sigmoid(y)
    f = (x + sy) * ((sx + (x + y) ** 2).reciprocal())
    s = graph_structure(f)
    places, bends = _layout(s)
    assert all(places[n.id][0] == n.depth for n in s.nodes)
    for col in {c for c, _ in places.values()}:
        rows = sorted(r for c, r in places.values() if c == col)
        assert all(b - a >= 1.0 - 1e-9 for a, b in zip(rows, rows[1:]))
    # a long edge has one waypoint per column it crosses
    for e, bend in zip(s.edges, bends):
        assert [c for c, _ in bend] == list(range(s.node(e.src).depth + 1, s.node(e.dst).depth))


def total_crossings(structure):
    """Crossings of the drawn layout, counted between neighbouring columns (waypoints included)."""
    places, bends = _layout(structure)
    items = {n.id: places[n.id] for n in structure.nodes}
    segments = []  # (column on the left, row there, row in the next column)
    for e, bend in zip(structure.edges, bends):
        points = [places[e.src]] + list(bend) + [places[e.dst]]
        segments += [(a[0], a[1], b[1]) for a, b in zip(points, points[1:])]
    assert items
    count = 0
    for i, (c1, a1, b1) in enumerate(segments):
        for c2, a2, b2 in segments[i + 1:]:
            if c1 == c2 and (a1 - a2) * (b1 - b2) < 0:
                count += 1
    return count


def staged_function():
    x = scalar(3.0, torch.float64)
    y = scalar(-4.0, torch.float64)
    st = {"x": x, "y": y}
    st["sig_y"] = torch.sigmoid(y)
    st["num"] = x + st["sig_y"]
    st["sig_x"] = torch.sigmoid(x)
    st["s"] = x + y
    st["s2"] = st["s"] ** 2
    st["den"] = st["sig_x"] + st["s2"]
    st["inv"] = st["den"].reciprocal()
    st["f"] = st["num"] * st["inv"]
    return st


def test_staged_function_is_drawn_with_the_fewest_crossings():
    # chapter 01's staged function: one crossing is unavoidable (x reaches num past s -> s2),
    # the barycentre sweeps alone left two
    st = staged_function()
    s = graph_structure(st["f"], st)
    assert total_crossings(s) == 1


def test_layout_without_forks_has_no_crossings():
    x, y, z, w = scalar(3.0), scalar(-4.0), scalar(2.0), scalar(-1.0)
    f = 2 * (x * y + torch.maximum(z, w))
    assert total_crossings(graph_structure(f)) == 0
    assert _crossings(["a", "b"], ["c", "d"], [("a", "d"), ("b", "c")]) == 1


# ---------------------------------------------------------------- drawing

def texts_of(fig):
    return [(t.get_text(), tuple(round(v, 9) for v in t.get_position())) for ax in fig.axes for t in ax.texts]


def test_draw_returns_a_figure_with_one_box_per_node():
    x, y = scalar(4.0), scalar(-3.0)
    f = x * y
    fig = draw_graph(f, {"x": x, "y": y, "f": f})
    assert isinstance(fig, Figure)
    # a named operation shows its name over the operation; a leaf only its name
    assert [t for t, _ in texts_of(fig)] == ["x", "y", "f", "mul"]
    assert len([p for p in fig.axes[0].patches if type(p).__name__ == "FancyBboxPatch"]) == 3


def test_draw_layout_is_the_same_on_every_call():
    x, y, z = scalar(-2.0), scalar(5.0), scalar(-4.0)
    q = x + y
    f = q * z * x
    names = {"x": x, "y": y, "z": z, "q": q}
    assert texts_of(draw_graph(f, names)) == texts_of(draw_graph(f, names))


def test_draw_shows_values_and_gradients():
    x, y, z, w = scalar(3.0), scalar(-4.0), scalar(2.0), scalar(-1.0)
    m = torch.maximum(z, w)
    s = x * y + m
    s.retain_grad()
    f = 2 * s
    f.retain_grad()
    f.backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # m's .grad was not retained: it must be skipped silently
        fig = draw_graph(f, {"x": x, "y": y, "z": z, "w": w, "m": m, "s": s, "f": f},
                         show_values=True, show_grads=True, title="gates")
    shown = [t for t, _ in texts_of(fig)]
    for expected in ("value \u221220", "grad 1", "grad \u22128", "grad 6", "grad 2", "grad 0", "s", "add", "m", "max"):
        assert expected in shown, expected
    assert shown.count("value 2") == 2  # z and m; m shows no grad line
    assert fig.axes[0].get_title() == "gates"
    plain = [t for t, _ in texts_of(draw_graph(f, {"x": x}))]
    assert not any(t.startswith(("value", "grad")) for t in plain)


def test_draw_formats_vectors_and_large_tensors():
    w = scalar([2.0, -3.0, -0.0])
    big = scalar([[1.0] * 3] * 2)
    fig = draw_graph((w.sum() + big.sum()), {"w": w, "big": big}, show_values=True)
    shown = [t for t, _ in texts_of(fig)]
    assert "value [2, \u22123, 0]" in shown and "value shape (2, 3)" in shown


def test_text_is_readable_when_the_figure_is_shown_at_its_size():
    # at the book's 100 dpi a 10 pt text is 14 px high; the staged graph fits a 1280 px page
    st = staged_function()
    st["f"].backward()
    fig = draw_graph(st["f"], st, show_values=True, show_grads=True)
    sizes = {t.get_fontsize() for ax in fig.axes for t in ax.texts}
    assert min(sizes) >= 10
    width, height = fig.get_size_inches()
    assert width <= 7.6 and height <= 4.0


def test_draw_into_given_axes():
    fig, ax = plt.subplots()
    x = scalar(1.0)
    assert draw_graph(x * x, ax=ax) is fig
    assert len(ax.texts) == 2


# ---------------------------------------------------------------- bad input

def test_tensor_without_graph_raises():
    with pytest.raises(ValueError, match=r"root \(shape \(\)\) has no graph.*requires_grad=True"):
        graph_structure(torch.tensor(3.0) * 2)
    x = scalar([1.0, 2.0])
    with pytest.raises(ValueError, match=r"shape \(2,\)\) has no graph"):
        graph_structure((x * 2).detach())
    with torch.no_grad():
        y = x * 2
    with pytest.raises(ValueError, match="requires_grad=True"):
        draw_graph(y)


def test_root_that_is_not_a_tensor_raises():
    with pytest.raises(TypeError, match="graph_structure: root must be a torch.Tensor, got float"):
        graph_structure(3.0)


def test_bad_names_raise():
    x = scalar(2.0)
    f = x * x
    with pytest.raises(TypeError, match="names must be a dict.*got list"):
        graph_structure(f, [x])
    with pytest.raises(TypeError, match=r"names\['x'\] must be a torch.Tensor.*got float"):
        graph_structure(f, {"x": 2.0})
    with pytest.raises(TypeError, match=r"names\['x'\] must be a torch.Tensor.*got ndarray"):
        draw_graph(f, {"x": x.detach().numpy()})
    with pytest.raises(TypeError, match="every key must be a string.*got 1"):
        graph_structure(f, {1: x})
    with pytest.raises(ValueError, match="'x' and 'x2' are the same tensor"):
        graph_structure(f, {"x": x, "x2": x})


def test_bad_drawing_options_raise():
    x = scalar(2.0)
    f = x * x
    with pytest.raises(TypeError, match="show_values must be True or False, got 1"):
        draw_graph(f, show_values=1)
    with pytest.raises(TypeError, match="show_grads must be True or False"):
        draw_graph(f, show_grads="yes")
    with pytest.raises(TypeError, match="title must be a string or None, got int"):
        draw_graph(f, title=3)
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes.*got Figure"):
        draw_graph(f, ax=plt.figure())


def test_unknown_node_id_raises():
    x = scalar(2.0)
    with pytest.raises(KeyError, match="no node with id 'n9'; ids are n0, n1"):
        graph_structure(x * x).node("n9")


# ---------------------------------------------------------------- the backward graph (with None)

def test_backward_structure_names_autograd_classes_and_keeps_none():
    x = torch.ones(2, 2, requires_grad=True)
    y = x + 2
    out = (3 * y ** 2).mean()
    s = backward_structure(out, {"x": x, "out": out})
    assert [(n.kind, n.label) for n in s.nodes] == [
        ("leaf", "AccumulateGrad"), ("none", "None"), ("op", "AddBackward0"),
        ("op", "PowBackward0"), ("none", "None"), ("op", "MulBackward0"),
        ("output", type(out.grad_fn).__name__)]
    assert s.nodes[0].name == "x" and s.nodes[-1].name == "out"
    # one None per None entry of next_functions, each just left of the node that has it
    assert sum(n.kind == "none" for n in s.nodes) == sum(
        child is None for fn in (y.grad_fn, out.grad_fn.next_functions[0][0])
        for child, _ in fn.next_functions)
    for e in s.edges:
        if s.node(e.src).kind == "none":
            assert s.node(e.src).depth == s.node(e.dst).depth - 1
    # the forward view is unchanged: no None nodes, readable op names
    assert "none" not in {n.kind for n in graph_structure(out).nodes}


def test_backward_structure_of_a_leaf_and_of_a_graph_without_constants():
    a = scalar(2.0)
    assert [(n.kind, n.label) for n in backward_structure(a).nodes] == [("leaf", "AccumulateGrad")]
    b = scalar(3.0)
    s = backward_structure(a * b)
    assert [n.kind for n in s.nodes].count("none") == 0 and len(s.edges) == 2


def test_draw_backward_graph_draws_one_box_per_node_and_arrows_towards_the_leaves():
    x = torch.ones(2, requires_grad=True)
    out = ((x + 2) * 3).sum()
    fig = draw_backward_graph(out, {"x": x, "out": out}, title="backward")
    ax = fig.axes[0]
    texts = {t.get_text() for t in ax.texts}
    assert {"AccumulateGrad", "into x.grad", "None", "AddBackward0", "MulBackward0",
            "out.grad_fn"} <= texts
    assert len(ax.patches) == len(backward_structure(out).nodes) + len(backward_structure(out).edges)
    arrows = [p for p in ax.patches if type(p).__name__ == "FancyArrowPatch"]
    assert arrows and all(type(p.get_arrowstyle()).__name__ == "CurveFilledA" for p in arrows)


def test_draw_backward_graph_bad_arguments():
    with pytest.raises(ValueError, match="draw_backward_graph|backward_structure"):
        draw_backward_graph(torch.ones(2))
    x = scalar(1.0)
    with pytest.raises(TypeError, match="title"):
        draw_backward_graph(x * 2, title=3)
    with pytest.raises(TypeError, match="draw_backward_graph: ax"):
        draw_backward_graph(x * 2, ax="axes")
