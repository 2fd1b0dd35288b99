"""The layout and rendering behind :func:`gradlab.graph.draw_graph` and :func:`~gradlab.graph.draw_backward_graph`.

:func:`_layout` places a :class:`~gradlab.graph.GraphStructure` on a grid (a simplified Sugiyama
layout, deterministic); :func:`_render` draws it with matplotlib (imported only when drawing).
"""
from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .graph import GraphStructure

#: Layout, in inches: gap between columns, padding inside a box, height of a text line, gap
#: between boxes of one column. Text sizes in points: readable when the figure is shown at its size.
_COLUMN_GAP, _BOX_PAD, _LINE_HEIGHT, _ROW_GAP = 0.32, 0.1, 0.2, 0.3
_LABEL_SIZE, _TEXT_SIZE = 11, 10
#: Layers of at most this many items are ordered by trying every permutation.
_EXHAUSTIVE_LAYER = 6
#: Graphs with at most this many combinations of layer orders are searched exhaustively.
_EXHAUSTIVE_COMBOS = 20000


def _crossings(left: list, right: list, links: list[tuple]) -> int:
    """Number of pairs of links between two adjacent layers that cross."""
    li = {k: i for i, k in enumerate(left)}
    ri = {k: i for i, k in enumerate(right)}
    pairs = sorted((li[a], ri[b]) for a, b in links)
    return sum(1 for i in range(len(pairs)) for j in range(i + 1, len(pairs))
               if pairs[i][0] < pairs[j][0] and pairs[i][1] > pairs[j][1])


def _layout(structure: GraphStructure) -> tuple[dict[str, tuple[int, float]], list[list[tuple[int, float]]]]:
    """Place the graph on a grid: ``(places, bends)``.

    ``places[id] = (column, row)`` for every node (column = depth, rows grow downwards from 0);
    ``bends[k]`` lists the ``(column, row)`` points that edge ``k`` passes through on its way
    across the columns between its ends (empty for an edge between neighbouring columns).
    A simplified Sugiyama layout: long edges get one waypoint per column they cross, the order
    within each column is improved by barycentre sweeps (fewest crossings wins, ties keep the
    earlier order), then every item moves as close as it can to the mean row of its inputs.
    Everything is sorted by node position, so the result never depends on hashing or timing.
    """
    topo = {n.id: i for i, n in enumerate(structure.nodes)}
    depth = {n.id: n.depth for n in structure.nodes}
    n_layers = max(depth.values()) + 1
    layers: list[list] = [[] for _ in range(n_layers)]
    preds: dict = {n.id: [] for n in structure.nodes}
    succs: dict = {n.id: [] for n in structure.nodes}
    key: dict = {n.id: (topo[n.id], 0, 0) for n in structure.nodes}
    chains: list[list] = []
    for k, e in enumerate(structure.edges):
        chain, prev = [], e.src
        for d in range(depth[e.src] + 1, depth[e.dst]):
            v = ("via", k, d)  # a waypoint of edge k in column d
            preds[v], succs[v] = [prev], []
            succs[prev].append(v)
            key[v] = (topo[e.src], 1, k)
            chain.append(v)
            prev = v
        succs[prev].append(e.dst)
        preds[e.dst].append(prev)
        chains.append(chain)
    for item in key:
        layers[item[2] if isinstance(item, tuple) else depth[item]].append(item)
    layers = [sorted(layer, key=key.get) for layer in layers]

    def links(d: int) -> list[tuple]:
        return [(a, b) for b in layers[d + 1] for a in preds[b]]

    def total() -> int:
        return sum(_crossings(layers[d], layers[d + 1], links(d)) for d in range(n_layers - 1))

    def reorder(d: int, neighbours: dict, ref: list) -> None:
        at = {k: i for i, k in enumerate(ref)}
        now = {k: i for i, k in enumerate(layers[d])}

        def centre(item):
            around = [at[x] for x in neighbours[item]]
            return sum(around) / len(around) if around else now[item]
        layers[d] = sorted(layers[d], key=lambda item: (centre(item), now[item]))

    for d in range(1, n_layers):
        reorder(d, preds, layers[d - 1])
    best, best_layers = total(), [list(layer) for layer in layers]
    for _ in range(4):
        if best == 0:
            break
        for d in range(n_layers - 2, -1, -1):
            reorder(d, succs, layers[d + 1])
        for d in range(1, n_layers):
            reorder(d, preds, layers[d - 1])
        score = total()
        if score < best:
            best, best_layers = score, [list(layer) for layer in layers]
    layers = best_layers

    def around(d: int) -> int:  # crossings on both sides of layer d
        left = _crossings(layers[d - 1], layers[d], links(d - 1)) if d > 0 else 0
        right = _crossings(layers[d], layers[d + 1], links(d)) if d < n_layers - 1 else 0
        return left + right

    # Small graphs: try every combination of orders and keep the first with fewest crossings (the
    # barycentre sweeps alone leave avoidable crossings in graphs with forks). Larger graphs: try
    # every order of one small layer at a time, the others fixed, until no layer improves.
    combos = math.prod(math.factorial(len(layer)) for layer in layers)
    if 0 < best and combos <= _EXHAUSTIVE_COMBOS:
        start = [list(layer) for layer in layers]
        for choice in itertools.product(*(itertools.permutations(layer) for layer in start)):
            layers = [list(order) for order in choice]
            score = total()
            if score < best:
                best, best_layers = score, layers
                if best == 0:
                    break
        layers = best_layers
    improved = best > 0
    while improved:
        improved = False
        for d in range(n_layers):
            if len(layers[d]) < 2 or len(layers[d]) > _EXHAUSTIVE_LAYER:
                continue
            start, now = list(layers[d]), around(d)
            for order in itertools.permutations(start):
                layers[d] = list(order)
                if around(d) < now:
                    start, now, improved = list(order), around(d), True
            layers[d] = start

    def gap(a, b) -> float:
        real = sum(not isinstance(x, tuple) for x in (a, b))
        return (0.4, 0.7, 1.0)[real]

    rows: dict = {}
    for d, layer in enumerate(layers):
        last = None
        for item in layer:
            around = [rows[x] for x in preds[item]]
            want = sum(around) / len(around) if around else (0.0 if last is None else rows[last] + gap(last, item))
            rows[item] = want if last is None else max(want, rows[last] + gap(last, item))
            last = item
    top = min(rows.values())
    places = {n.id: (depth[n.id], rows[n.id] - top) for n in structure.nodes}
    bends = [[(v[2], rows[v] - top) for v in chain] for chain in chains]
    return places, bends


def _render(structure: GraphStructure, texts: dict, *, ax, title, backward: bool):
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path

    from .plotting import PALETTE

    if ax is not None and not isinstance(ax, Axes):
        fn = "draw_backward_graph" if backward else "draw_graph"
        raise TypeError(f"{fn}: ax must be a matplotlib Axes (e.g. from plt.subplots()), got {type(ax).__name__}.")
    places, bends = _layout(structure)

    n_columns = max(c for c, _ in places.values()) + 1
    widths = [0.5] * n_columns
    for n in structure.nodes:
        longest = max(_text_width(t, role) for t, role in texts[n.id])
        widths[n.depth] = max(widths[n.depth], longest + 2 * _BOX_PAD)
    lefts = []
    x = 0.0
    for w in widths:
        lefts.append(x)
        x += w + _COLUMN_GAP
    total_width = x - _COLUMN_GAP
    box_height = 0.16 + _LINE_HEIGHT * max(len(v) for v in texts.values())
    step = box_height + _ROW_GAP
    n_rows = max([r for _, r in places.values()] + [r for bend in bends for _, r in bend]) + 1

    centre = {nid: (lefts[col] + widths[col] / 2, -row * step) for nid, (col, row) in places.items()}

    margin = 0.08
    x_range = (-margin, total_width + margin)
    y_range = (-(n_rows - 1) * step - box_height / 2 - margin, box_height / 2 + margin)
    if ax is None:
        title_space = 0.35 if title else 0.0
        fig = plt.figure(figsize=(x_range[1] - x_range[0], y_range[1] - y_range[0] + title_space))
        ax = fig.add_axes((0, 0, 1, (y_range[1] - y_range[0]) / fig.get_figheight()))
    else:
        fig = ax.figure
        ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_xlim(*x_range)
    ax.set_ylim(*y_range)

    fill = {"leaf": "#D6EAF8", "op": "#F2F2F2", "output": "#FDEBD0", "none": "#FFFFFF"}
    edge_colour = {"leaf": PALETTE[0], "op": "#555555", "output": PALETTE[4], "none": "#888888"}
    for n in structure.nodes:
        cx, cy = centre[n.id]
        w = widths[n.depth]
        ax.add_patch(FancyBboxPatch((cx - w / 2, cy - box_height / 2), w, box_height,
                                    boxstyle="round,pad=0,rounding_size=0.08", linewidth=1.2,
                                    linestyle="--" if n.kind == "none" else "-",
                                    facecolor=fill[n.kind], edgecolor=edge_colour[n.kind], zorder=2))
        lines = texts[n.id]
        top = cy + _LINE_HEIGHT * (len(lines) - 1) / 2
        for k, (text, role) in enumerate(lines):
            ax.text(cx, top - k * _LINE_HEIGHT, text, ha="center", va="center", zorder=3,
                    **_TEXT_STYLE[role])

    multiplicity: dict[tuple[str, str], int] = {}
    for e in structure.edges:
        multiplicity[(e.src, e.dst)] = multiplicity.get((e.src, e.dst), 0) + 1
    drawn: dict[tuple[str, str], int] = {}
    for e, bend in zip(structure.edges, bends):
        pair = (e.src, e.dst)
        k, m = drawn.get(pair, 0), multiplicity[pair]
        drawn[pair] = k + 1
        (x0, y0), (x1, y1) = centre[e.src], centre[e.dst]
        start = (x0 + widths[structure.node(e.src).depth] / 2, y0)
        end = (x1 - widths[structure.node(e.dst).depth] / 2, y1)
        style = dict(arrowstyle="<|-" if backward else "-|>", mutation_scale=12, linewidth=1.2,
                     color="#444444", zorder=1, shrinkA=1 if backward else 0,
                     shrinkB=0 if backward else 1)
        if bend:  # a long edge: run through its own row in every column it crosses
            points = [start]
            for col, row in bend:
                points += [(lefts[col], -row * step), (lefts[col] + widths[col], -row * step)]
            points.append(end)
            path = Path(points, [Path.MOVETO] + [Path.LINETO] * (len(points) - 1))
            ax.add_patch(FancyArrowPatch(path=path, **style))
        else:
            rad = 0.0 if m == 1 else 0.5 * (k - (m - 1) / 2) / (m - 1)  # fan out repeated edges
            ax.add_patch(FancyArrowPatch(start, end, connectionstyle=f"arc3,rad={rad}", **style))
    if title:
        ax.set_title(title, fontsize=_LABEL_SIZE)
    return fig


_TEXT_STYLE = {
    "label": {"fontsize": _LABEL_SIZE, "fontweight": "bold", "color": "black"},
    "op": {"fontsize": _TEXT_SIZE, "color": "#333333"},
    "value": {"fontsize": _TEXT_SIZE, "color": "#007A55"},  # darker than PALETTE[2]: contrast on grey
    "grad": {"fontsize": _TEXT_SIZE, "color": "#B84A00"},
}


def _text_width(text: str, role: str) -> float:
    """Width in inches of ``text`` drawn in the style of ``role`` (measured on the glyphs)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    style = _TEXT_STYLE[role]
    prop = FontProperties(weight=style.get("fontweight", "normal"))
    extents = TextPath((0, 0), text, size=style["fontsize"], prop=prop).get_extents()
    return extents.width / 72.0
