"""The agent's graph as a trace recorded it (``metadata["graph"]``, LangGraph's
``get_graph().to_json()``): read defensively, laid out in layers, drawn with plotly, each node
with what its steps did. Pure functions: no I/O, no Streamlit.

The metadata is the recording program's, so it is read as untrusted: anything that is not a
list of nodes with ids and edges between them gives no graph rather than an error, and every
name is escaped before plotly renders it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard import charts, colours, frames, human

START, END = "__start__", "__end__"
# More nodes than this are not drawn: the picture would be unreadable anyway.
MAX_NODES = 300
DIRECTIONS = {"left to right": "LR", "top down": "TB"}
NODE_PX = 26
EDGE_COLOUR = "#888888"
# How far an edge that goes back (a loop) or skips layers bows out of the straight line.
BOW = 0.32


@dataclass(frozen=True)
class Graph:
    """Nodes (id -> name shown) in the order given, and edges ``(source, target,
    conditional, label)`` between them."""

    nodes: dict[str, str]
    edges: list[tuple[str, str, bool, str | None]] = field(default_factory=list)


def graph_of(metadata: Any) -> Graph | None:
    """The graph a trace's metadata holds, or None when it holds none that can be drawn."""
    raw = metadata.get("graph") if isinstance(metadata, Mapping) else None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("nodes"), list):
        return None
    nodes: dict[str, str] = {}
    for node in raw["nodes"][: MAX_NODES + 1]:
        if not isinstance(node, Mapping) or not isinstance(node.get("id"), (str, int)):
            continue
        data = node.get("data")
        name = node.get("name") or (data.get("name") if isinstance(data, Mapping) else None) or node["id"]
        nodes[str(node["id"])] = str(name)
    if not nodes or len(nodes) > MAX_NODES:
        return None
    edges = []
    for edge in raw.get("edges") if isinstance(raw.get("edges"), list) else []:
        if not isinstance(edge, Mapping):
            continue
        source, target = str(edge.get("source")), str(edge.get("target"))
        if source in nodes and target in nodes:
            label = edge.get("label", edge.get("data"))
            edges.append(
                (source, target, bool(edge.get("conditional")), label if isinstance(label, str) else None)
            )
    return Graph(nodes, edges)


def _back_edges(graph: Graph) -> set[tuple[str, str]]:
    """Edges that close a loop, found by a depth-first walk from the start (then from any
    node not reached): without them the graph has no cycle and can be layered."""
    successors: dict[str, list[str]] = {n: [] for n in graph.nodes}
    incoming = {t for _, t, _, _ in graph.edges}
    for source, target, _, _ in graph.edges:
        successors[source].append(target)
    state: dict[str, int] = {}  # 1 on the walk's path, 2 done
    back: set[tuple[str, str]] = set()
    roots = (
        [n for n in graph.nodes if n == START]
        + [n for n in graph.nodes if n not in incoming]
        + list(graph.nodes)
    )
    for root in roots:
        if root in state:
            continue
        stack = [(root, iter(successors[root]))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(successors[child])))
    return back


def layers(graph: Graph) -> dict[str, tuple[int, int]]:
    """Each node's layer (the longest way to it from the start, loops left out; the end
    last) and its rank within the layer (ordered so that edges cross little)."""
    back = _back_edges(graph)
    forward = [(s, t) for s, t, _, _ in graph.edges if (s, t) not in back and s != t]
    indegree = {n: 0 for n in graph.nodes}
    successors: dict[str, list[str]] = {n: [] for n in graph.nodes}
    predecessors: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for s, t in forward:
        indegree[t] += 1
        successors[s].append(t)
        predecessors[t].append(s)
    layer = dict.fromkeys(graph.nodes, 0)
    ready = [n for n in graph.nodes if indegree[n] == 0]
    while ready:
        node = ready.pop(0)
        for child in successors[node]:
            layer[child] = max(layer[child], layer[node] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if END in layer and len(layer) > 1:
        layer[END] = max(max(v for k, v in layer.items() if k != END) + 1, layer[END])
    by_layer: dict[int, list[str]] = {}
    for node in graph.nodes:
        by_layer.setdefault(layer[node], []).append(node)
    rank = {n: i for members in by_layer.values() for i, n in enumerate(members)}
    # A few sweeps of the barycentre heuristic: each node moves towards its neighbours'
    # ranks in the layer before (going down) or after (going up).
    for sweep in range(4):
        down = sweep % 2 == 0
        for number in sorted(by_layer, reverse=not down):
            members = by_layer[number]
            near = predecessors if down else successors

            def centre(node: str, near: dict[str, list[str]] = near) -> float:
                ranks = [rank[m] for m in near[node]]
                return sum(ranks) / len(ranks) if ranks else rank[node]

            members.sort(key=centre)
            rank.update({n: i for i, n in enumerate(members)})
    return {n: (layer[n], rank[n]) for n in graph.nodes}


def positions(graph: Graph, direction: str = "LR") -> dict[str, tuple[float, float]]:
    """Where each node is drawn: layers left to right (``"LR"``) or top down (``"TB"``),
    each layer's nodes centred on the middle line."""
    placed = layers(graph)
    width: dict[int, int] = {}
    for number, _ in placed.values():
        width[number] = width.get(number, 0) + 1
    out = {}
    for node, (number, rank) in placed.items():
        across = (width[number] - 1) / 2 - rank
        out[node] = (float(number), float(across)) if direction == "LR" else (float(-across), float(-number))
    return out


def node_facts(graph: Graph, entries: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Per node of the graph: ``node`` (its id), ``lane`` (the node name its steps carry),
    ``steps``, ``errors``, ``p50_ms`` of the stored steps, and ``running_ms`` (how long the
    node has been running at ``now``; NaN when it is not)."""
    done = frames.finished(entries)
    stats = frames.node_stats(done).set_index("node") if not done.empty else pd.DataFrame()
    running = entries[entries["open"]] if "open" in entries else entries.iloc[0:0]
    lanes = set(stats.index) | set(running["node"].dropna().astype(str))
    rows = []
    for node_id, name in graph.nodes.items():
        # A node's steps carry its name; a subgraph's nodes are drawn as "parent:child".
        lane = next((c for c in (node_id, name, node_id.rsplit(":", 1)[-1]) if c in lanes), node_id)
        open_here = running[running["node"].astype(str) == lane]
        so_far = (
            (pd.Timestamp(now) - open_here["started_at"]).dt.total_seconds().max() * 1000.0
            if not open_here.empty
            else np.nan
        )
        rows.append(
            {
                "node": node_id,
                "lane": lane,
                "steps": int(stats.loc[lane, "steps"]) if lane in stats.index else 0,
                "errors": int(stats.loc[lane, "errors"]) if lane in stats.index else 0,
                "p50_ms": float(stats.loc[lane, "p50_ms"]) if lane in stats.index else np.nan,
                "running_ms": so_far,
            }
        )
    return pd.DataFrame(rows, columns=["node", "lane", "steps", "errors", "p50_ms", "running_ms"])


def _curve(a: tuple[float, float], b: tuple[float, float], bow: float) -> tuple[np.ndarray, np.ndarray]:
    """Points of a quadratic curve from ``a`` to ``b``, bowed sideways by ``bow`` of its
    length (a straight line for 0)."""
    (x0, y0), (x1, y1) = a, b
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    length = float(np.hypot(x1 - x0, y1 - y0)) or 1.0
    cx, cy = mx - (y1 - y0) / length * bow * length, my + (x1 - x0) / length * bow * length
    t = np.linspace(0.0, 1.0, 24)
    xs = (1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t**2 * x1
    ys = (1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t**2 * y1
    return xs, ys


def _label(name: str, facts: Mapping[str, Any], special: bool) -> str:
    if special:
        return charts.plain(name.strip("_"))
    parts = [f"<b>{charts.plain(name)}</b>"]
    if facts["steps"]:
        line = human.count(facts["steps"], "step")
        if not np.isnan(facts["p50_ms"]):
            line += f" · p50 {human.duration(facts['p50_ms'])}"
        parts.append(line)
    if facts["errors"]:
        parts.append(human.count(facts["errors"], "error"))
    if not np.isnan(facts["running_ms"]):
        parts.append(f"● running {human.duration(facts['running_ms'])}")
    return "<br>".join(parts)


def graph_figure(
    graph: Graph, facts: pd.DataFrame, direction: str = "LR", chosen: str | None = None
) -> go.Figure:
    """The graph: edges as arrows (dashed where a condition picks them, bowed where they
    loop back or skip a layer), nodes as squares with their steps, median duration and
    errors; a running node outlined in the running colour, a node with errors in the error
    colour, ``chosen`` ringed. Each node's id is its point's ``customdata``, for selection."""
    where = positions(graph, direction)
    placed = layers(graph)
    fig = go.Figure()
    for conditional in (False, True):
        xs: list[float] = []
        ys: list[float] = []
        for source, target, cond, label in graph.edges:
            if cond != conditional:
                continue
            a, b = where[source], where[target]
            skip = placed[target][0] - placed[source][0]
            bow = 0.0 if skip == 1 else BOW if skip > 1 else -BOW * 1.4
            if source == target:
                a = (a[0] - 0.15, a[1] + 0.15) if direction == "LR" else (a[0] + 0.15, a[1] + 0.15)
                bow = 1.2
            cx, cy = _curve(a, b, bow)
            xs += [*cx, np.nan]
            ys += [*cy, np.nan]
            fig.add_annotation(
                x=cx[-1],
                y=cy[-1],
                ax=cx[-4],
                ay=cy[-4],
                xref="x",
                yref="y",
                axref="x",
                ayref="y",
                showarrow=True,
                arrowhead=2,
                arrowsize=1.3,
                arrowwidth=1.3,
                arrowcolor=EDGE_COLOUR,
                standoff=NODE_PX / 2 + 2,
                text="",
            )
            if label:
                fig.add_annotation(
                    x=cx[12],
                    y=cy[12],
                    text=charts.plain(label),
                    showarrow=False,
                    font={"size": 10, "color": "#555"},
                )
        if xs:
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    line={"color": EDGE_COLOUR, "width": 1.3, "dash": "dot" if conditional else "solid"},
                    hoverinfo="skip",
                    showlegend=False,
                )
            )
    by_id = facts.set_index("node")
    ids = list(graph.nodes)
    special = [n in (START, END) for n in ids]
    running = [not np.isnan(by_id.loc[n, "running_ms"]) for n in ids]
    errors = [int(by_id.loc[n, "errors"]) > 0 for n in ids]
    steps = [int(by_id.loc[n, "steps"]) for n in ids]
    fill = [
        colours.BLACK if sp else colours.SKY_BLUE if st_ else "#DDDDDD"
        for sp, st_ in zip(special, steps, strict=True)
    ]
    outline = [
        colours.BLUE if r else colours.VERMILLION if e else colours.ORANGE if n == chosen else "#666666"
        for n, r, e in zip(ids, running, errors, strict=True)
    ]
    width = [4 if r or e or n == chosen else 1 for n, r, e in zip(ids, running, errors, strict=True)]
    hover = []
    for node in ids:
        row = by_id.loc[node]
        text = f"<b>{charts.plain(graph.nodes[node])}</b><br>{human.count(int(row['steps']), 'step')}"
        text += f" · median {human.duration(row['p50_ms'])} · {human.count(int(row['errors']), 'error')}"
        if not np.isnan(row["running_ms"]):
            text += f"<br>running for {human.duration(row['running_ms'])}"
        hover.append(text + ("<br>click to see its steps" if row["steps"] else ""))
    fig.add_trace(
        go.Scatter(
            x=[where[n][0] for n in ids],
            y=[where[n][1] for n in ids],
            mode="markers+text",
            marker={
                "symbol": ["circle" if sp else "square" for sp in special],
                "size": [12 if sp else NODE_PX for sp in special],
                "opacity": 1.0,  # sizes given per point would make plotly draw them see-through
                "color": fill,
                "line": {"color": outline, "width": width},
            },
            text=[_label(graph.nodes[n], by_id.loc[n], sp) for n, sp in zip(ids, special, strict=True)],
            textposition="bottom center" if direction == "LR" else "middle right",
            textfont={"size": 12, "color": "#31333F"},
            # a clicked node stays as it is drawn; the ring shows what the entries are filtered by
            selected={"marker": {"opacity": 1.0}, "textfont": {"color": "#31333F"}},
            unselected={"marker": {"opacity": 1.0}, "textfont": {"color": "#31333F"}},
            customdata=ids,
            hovertext=hover,
            hoverinfo="text",
            showlegend=False,
        )
    )
    across = max(
        (sum(1 for v in placed.values() if v[0] == k) for k in {v[0] for v in placed.values()}), default=1
    )
    depth = max((v[0] for v in placed.values()), default=0) + 1
    fig.update_xaxes(visible=False, range=_padded(where, 0, 0.5 if direction == "LR" else 1.2))
    fig.update_yaxes(visible=False, range=_padded(where, 1, 0.75 if direction == "LR" else 0.5))
    fig.update_layout(
        height=(120 + 100 * across) if direction == "LR" else (90 + 95 * depth),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        hovermode="closest",
        clickmode="event+select",
        dragmode=False,
        plot_bgcolor="rgba(0,0,0,0)",
    )
    return fig


def _padded(where: Mapping[str, tuple[float, float]], axis: int, pad: float) -> list[float]:
    values = [p[axis] for p in where.values()]
    return [min(values) - pad, max(values) + pad]
