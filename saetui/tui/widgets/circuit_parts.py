"""The circuit screen's text parts, each drawn at its widget's width (cut with an ellipsis, never wrapped):
the header (metric, m full/empty, Spearman), the selected node (label, estimate, measured ablation, its edges)
and the faithfulness curve as a three-line bar chart."""

from __future__ import annotations

from typing import Any, Callable

from rich.cells import cell_len
from textual.content import Content
from textual.widget import Widget

from saetui.sae.attribution import disagreement_flag
from saetui.tui.markup import escape
from saetui.tui.widgets.circuit_grid import ERROR_MARK

_BARS = " ▁▂▃▄▅▆▇█"


class Lines(Widget):
    """Lines of Textual markup (as every widget of the app's; user text in them through saetui.tui.markup.escape),
    each cut to the width with an ellipsis: the widget's height never changes."""

    DEFAULT_CSS = "Lines { height: auto; }"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines: list[str] = []
        self.make: Callable[[int], list[str]] | None = None  # lines made for a width (redrawn on resize)

    def show(self, lines: list[str] | Callable[[int], list[str]]) -> None:
        if callable(lines):
            self.make, self.lines = lines, []
        else:
            self.make, self.lines = None, list(lines)
        self.refresh(layout=True)

    def text(self) -> str:
        """What the widget shows, as plain text (for tests)."""
        return self.render().plain

    def render(self) -> Content:
        width = max(1, self.content_size.width or self.size.width or 80)
        lines = self.make(width) if self.make is not None else self.lines
        return Content("\n").join(Content.from_markup(markup).truncate(width, ellipsis=True) for markup in lines)


def metric_text(result: Any) -> str:
    from saetui.sae.circuit import metric_name

    return metric_name(result.target, result.versus, result.kind)


def header_lines(result: Any, verified: int) -> list[str]:
    spearman = "n/a" if result.spearman is None else f"{result.spearman:.2f}"
    prompt = result.prompts[0] if len(result.prompts) == 1 else f"{len(result.prompts)} prompts"
    # scores far off 0..1 because m(full) and m(empty) are close: the curve divides by their difference. (Scores
    # past 0..1 with the two far apart are features that interact, which the curve shows as it is.)
    off = any(p["score"] is not None and not -1 <= p["score"] <= 2 for p in result.faithfulness)
    close = abs(result.full - result.empty) < 0.05 * max(1.0, abs(result.full), abs(result.empty))
    near = " [b](≈ full: the curve's scores mean little)[/b]" if off and close else ""
    return [
        f"[b]{escape(metric_text(result))}[/b] after {escape(repr(prompt))}",
        f"m full {result.full:.3f} · empty {result.empty:.3f} · Spearman {spearman} (top {verified}){near} · "
        f"{len(result.nodes)} nodes · empty: every feature ablated; Spearman: estimates vs measured ablations",
    ]


def edge_end(key: str) -> str:
    """`demo/err@5` -> `demo/ε@5`: an edge's end as the grid names it."""
    return key.replace("/err@", f"/{ERROR_MARK}@")


def node_edges(result: Any, key: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(edges into the node, edges out of it), strongest first."""
    strongest = sorted(result.edges, key=lambda e: -abs(e["weight"]))
    return [e for e in strongest if e["to"] == key], [e for e in strongest if e["from"] == key]


def fit_items(lead: str, items: list[str], width: int) -> str:
    """`lead` then as many `items` as fit in `width` cells, then `+N more` for the rest (plain text, no markup)."""
    line, shown = lead, 0
    for i, item in enumerate(items):
        rest = len(items) - i - 1
        tail = f" · +{rest} more" if rest else ""
        sep = "" if shown == 0 else " · "
        if cell_len(line + sep + item + tail) > width and shown > 0:
            return line + f" · +{len(items) - shown} more"
        line, shown = line + sep + item, shown + 1
    return line


def node_lines(result: Any, node: Any, token: str, label: str, saes: list[str], measured: str, width: int) -> list[str]:
    """The selected node: what it is, its estimate and measured ablations, its edges in and out (4 lines)."""
    if node is None:
        return ["no node: this circuit is empty", "", "", ""]
    where = f"at {node.position} '{escape(token)}'"
    if node.feature is None:
        first = f"[b]{escape(node.sae)}/{ERROR_MARK}[/b] {where} · error node: what {escape(node.sae)} does not reconstruct"
    else:
        first = f"[b]{escape(node.sae)}/{node.feature}[/b] {where} · " + (escape(label) if label else "[dim](no label)[/dim]")
    ablated = "–" if node.ablated is None else f"{node.ablated:+.3f}"  # the top `verify` only
    second = f"estimate {node.effect:+.3f} · measured {ablated} · x: {measured}"
    flag = disagreement_flag(node.effect, node.ablated)
    if flag:  # flagged as why? flags its rows: the measured one is the one to trust
        second += f" · [b]{flag}[/b]"
    into, out = node_edges(result, node.key)
    order = saes.index(node.sae) if node.sae in saes else -1

    def edges(lead: str, chosen: list[dict[str, Any]], end: str, none: str) -> str:
        if not chosen:
            return escape(lead + none)
        return escape(fit_items(lead, [f"{edge_end(e[end])} {e['weight']:+.3g}" for e in chosen], width))

    first_sae, last_sae = order == 0, order == len(saes) - 1
    return [
        first, second,
        edges("← in  ", into, "from", "none (the first SAE)" if first_sae else "none kept"),
        edges("→ out ", out, "to", "none (the last SAE)" if last_sae else "none kept"),
    ]


def _score(score: float | None, width: int) -> str:
    if score is None:
        return "n/a"
    text = f"{score:.2f}"
    if -1 < score < 1:  # .55, -.09: the same width as 1.00
        text = text.replace("0.", ".", 1)
    if len(text) > width:
        text = f"{score:.0f}"
    return text if len(text) <= width else ("≫1" if score > 0 else "≪0")  # far off the scale: a note, not digits


def _count(n: int, width: int) -> str:
    """A node count in `width` cells: 5000 as `5000`, or `5k` where it would fill them (16051 at 4: `16k`)."""
    for text in (str(n), f"{n / 1e3:.0f}k", f"{n / 1e6:.0f}M"):
        if len(text) <= width:
            return text
    return "…"


def curve_lines(curve: list[dict[str, Any]], width: int) -> list[str]:
    """Faithfulness as bars (score 0..1, clamped) over k, the score under each bar and k below it: as many points
    as the width takes, `…` for the rest."""
    if not curve:
        return ["faithfulness: no feature node"]
    label_w = 10 if width >= 10 + 5 * len(curve) else 6
    labels = ("score 0..1", "", "k nodes") if label_w == 10 else ("score", "0..1", "k")
    col = 5 if label_w + 5 * len(curve) <= width else 4
    fit = max(1, (width - label_w - 1) // col)
    points = curve[:fit]
    bars, scores, ks = [], [], []
    for point in points:
        s = point["score"]
        level = 0 if s is None else max(0, min(8, round(s * 8)))
        bars.append(f"{_BARS[level] * (col - 1):>{col}}")
        scores.append(f"{_score(s, col - 1):>{col}}")
        ks.append(f"{_count(point['nodes'], col - 1):>{col}}")  # a space before each: 5000 and 16051 ran together
    more = "…" if len(points) < len(curve) else ""
    return [f"[dim]{labels[0]:>{label_w}}[/dim][ansi_cyan]{''.join(bars)}[/ansi_cyan]{more}",
            f"[dim]{labels[1]:>{label_w}}[/dim]{''.join(scores)}",
            f"[dim]{labels[2]:>{label_w}}[/dim]{''.join(ks)}"]
