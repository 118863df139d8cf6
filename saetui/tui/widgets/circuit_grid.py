"""CircuitGrid: a circuit's nodes as a layer x token grid, with a selection the arrow keys move over the nodes.

One row per SAE (early to late), one column per prompt position (its token in the header). A cell lists the
circuit's nodes at that SAE and position, strongest first: `feature effect`, an error node as `ε effect`. The
grid draws exactly its own size, whatever the circuit: a cell with more nodes than lines shows a window around the
selection and `+N more`; columns that do not fit are left out around the selected one (`‹N` / `+N›` in the
header say how many), and so are SAE rows (`↑N` in the header, `↓N more SAEs` below).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.widget import Widget

ERROR_MARK = "ε"  # an error node: the part of the activation its SAE does not reconstruct


def node_item(node: Any) -> str:
    """What a cell shows for a node: `561 -3.47`, an error node `ε -0.12` (effect: the metric's estimated change
    if it is ablated)."""
    name = ERROR_MARK if node.feature is None else str(node.feature)
    return f"{name} {node.effect:+.2f}"


class CircuitCells:
    """The grid's content and its selection, apart from drawing: cells[(row, col)] lists nodes by |effect|."""

    def __init__(self, nodes: Sequence[Any], saes: Sequence[str], tokens: Sequence[str]) -> None:
        self.saes, self.tokens = list(saes), list(tokens)
        self.cells: dict[tuple[int, int], list[Any]] = {}
        rows = {name: i for i, name in enumerate(self.saes)}
        for node in sorted(nodes, key=lambda n: -abs(n.effect)):
            if node.sae in rows and 0 <= node.position < len(self.tokens):
                self.cells.setdefault((rows[node.sae], node.position), []).append(node)
        strongest = min(self.cells, key=lambda rc: -abs(self.cells[rc][0].effect), default=None)
        self.row, self.col = strongest if strongest is not None else (0, 0)
        self.k = 0  # the selected node's place in its cell

    @property
    def selected(self) -> Any | None:
        cell = self.cells.get((self.row, self.col))
        return cell[self.k] if cell else None

    def cell(self, row: int, col: int) -> list[Any]:
        return self.cells.get((row, col), [])

    def columns_with_nodes(self) -> set[int]:
        return {c for _, c in self.cells}

    def move(self, direction: str) -> bool:
        """Move the selection; whether it moved. Up/down go through the cell's nodes, then to the nearest cell of
        the SAE above/below (the same token if it has nodes there); left/right to the nearest cell of the row."""
        here = self.cell(self.row, self.col)
        if not here:
            return False
        if direction in ("up", "down"):
            step = -1 if direction == "up" else 1
            if 0 <= self.k + step < len(here):
                self.k += step
                return True
            row = self.row + step
            while 0 <= row < len(self.saes):
                cols = [c for r, c in self.cells if r == row]
                if cols:
                    self.row, self.col = row, min(cols, key=lambda c: (abs(c - self.col), c))
                    self.k = 0 if step > 0 else len(self.cell(self.row, self.col)) - 1
                    return True
                row += step
            return False
        step = -1 if direction == "left" else 1
        cols = [c for r, c in self.cells if r == self.row and (c - self.col) * step > 0]
        if not cols:
            return False
        self.col = min(cols, key=lambda c: abs(c - self.col))
        self.k = min(self.k, len(self.cell(self.row, self.col)) - 1)
        return True

    def select(self, node: Any) -> None:
        for (row, col), nodes in self.cells.items():
            if node in nodes:
                self.row, self.col, self.k = row, col, nodes.index(node)


def _fit(text: str, width: int) -> str:
    """`text` in exactly `width` cells: cut with an ellipsis, or padded."""
    if width <= 0:
        return ""
    if cell_len(text) > width:
        text = Text(text)
        text.truncate(width, overflow="ellipsis")
        return text.plain
    return text + " " * (width - cell_len(text))


def _window(n: int, size: int, keep: int) -> int:
    """The first of `size` consecutive items out of `n` that show item `keep` (as near the middle as possible)."""
    return max(0, min(keep - size // 2, n - size))


class CircuitGrid(Widget):
    """Draws a CircuitCells at its own size (see the module docstring); `label(sae, feature)` adds labels where
    the columns have room."""

    COMPONENT_CLASSES = {"circuit-grid--header", "circuit-grid--band", "circuit-grid--selected", "circuit-grid--dim"}
    DEFAULT_CSS = """
    CircuitGrid { height: 1fr; }
    CircuitGrid > .circuit-grid--header { text-style: bold; color: $text-accent; }
    CircuitGrid > .circuit-grid--band { background: $boost; }
    CircuitGrid > .circuit-grid--selected { text-style: reverse bold; }
    CircuitGrid > .circuit-grid--dim { color: $text-muted; }
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cells: CircuitCells | None = None
        self.label: Callable[[str, int], str] = lambda sae, feature: ""
        self.shown_columns: list[int] = []  # what the last frame drew (tests look at it)

    def show(self, cells: CircuitCells, label: Callable[[str, int], str] | None = None) -> None:
        self.cells = cells
        if label is not None:
            self.label = label
        self.refresh()

    # ------------------------------------------------------------------ layout
    def _widths(self, width: int) -> tuple[int, list[int]]:
        """(name column width, width of each position column) for the whole prompt."""
        cells = self.cells
        assert cells is not None
        name_w = min(max([len(s) for s in cells.saes] + [3]), 14) + 1
        items = [cell_len(node_item(n)) for nodes in cells.cells.values() for n in nodes]
        item_w = max(items + [5])
        used = cells.columns_with_nodes()
        heads = [cell_len(self._head(pos)) for pos in range(len(cells.tokens))]
        widths = [max(item_w, min(h, 10)) + 1 if pos in used else min(h, 6) + 1 for pos, h in enumerate(heads)]
        spare = width - name_w - sum(widths)
        if used and spare > 0:  # room for labels: widen the columns with nodes, up to 34 cells
            extra = min(spare // len(used), 34 - item_w)
            widths = [w + extra if pos in used and extra > 0 else w for pos, w in enumerate(widths)]
        return name_w, widths

    def _head(self, pos: int) -> str:
        from types import SimpleNamespace

        from saetui.tui.widgets.token_table import token_label

        assert self.cells is not None
        return f"{pos} {token_label(SimpleNamespace(text=self.cells.tokens[pos], id=None))}"

    def _columns(self, width: int, name_w: int, widths: list[int]) -> list[int]:
        """The positions shown: all that fit, else a run around the selected one with room kept for the markers."""
        n = len(widths)
        if name_w + sum(widths) <= width:
            return list(range(n))
        room = width - name_w
        keep = self.cells.col if self.cells is not None else 0
        first = last = keep
        used = widths[keep]
        grew = True
        while grew:
            grew = False
            for side in (1, -1):
                nxt = last + 1 if side > 0 else first - 1
                if 0 <= nxt < n and used + widths[nxt] <= room:
                    used += widths[nxt]
                    first, last = (first, nxt) if side > 0 else (nxt, last)
                    grew = True
        while last < n - 1 and used > room - 5 and first < last:  # room for `+N›` after the last column
            if last > keep:
                used, last = used - widths[last], last - 1
            else:
                used, first = used - widths[first], first + 1
        return list(range(first, last + 1))

    def _rows(self, height: int) -> tuple[list[int], list[int], int]:
        """(SAE rows shown, lines each, rows hidden below): each row as many lines as its fullest cell needs,
        shared out when they do not all fit; more SAEs than lines: a window of one-line rows around the selection."""
        cells = self.cells
        assert cells is not None
        n = len(cells.saes)
        if n <= height:
            need = [max([len(cells.cell(r, c)) for c in range(len(cells.tokens))] + [1]) for r in range(n)]
            lines, left = [1] * n, height - n
            while left > 0 and any(lines[r] < need[r] for r in range(n)):
                for r in range(n):
                    if left > 0 and lines[r] < need[r]:
                        lines[r] += 1
                        left -= 1
            return list(range(n)), lines, 0
        count = max(1, height - 1)  # the last line says how many SAEs are below
        first = _window(n, count, cells.row)
        return list(range(first, first + count)), [1] * count, n - first - count

    # ------------------------------------------------------------------ drawing
    def render(self) -> Text:
        width, height = self.content_size.width, self.content_size.height
        cells = self.cells
        if cells is None or not cells.tokens or width <= 0 or height <= 1:
            return Text("")
        style = self.get_component_rich_style
        head_style, band, chosen, dim = (style("circuit-grid--header"), style("circuit-grid--band"),
                                         style("circuit-grid--selected"), style("circuit-grid--dim"))
        name_w, widths = self._widths(width)
        cols = self._columns(width, name_w, widths)
        self.shown_columns = cols
        rows, lines, below = self._rows(height - 1)
        out: list[Text] = []
        marks = [f"‹{cols[0]}" if cols[0] > 0 else "", f"↑{rows[0]}" if rows and rows[0] > 0 else ""]
        header = Text()
        header.append(_fit(" ".join(m for m in marks if m), name_w), style=dim)
        for c in cols:
            header.append(_fit(self._head(c), widths[c] - 1) + " ",
                          style=head_style + (chosen if c == cells.col else Style()))
        hidden_right = len(widths) - 1 - cols[-1]
        if hidden_right:
            header.append(f"+{hidden_right}›", style=dim)
        out.append(header)
        for i, (r, n_lines) in enumerate(zip(rows, lines)):
            shade = band if i % 2 else Style()
            columns = [self._cell_lines(r, c, n_lines, widths[c] - 1, chosen, dim) for c in cols]
            for line in range(n_lines):
                text = Text()
                text.append(_fit(cells.saes[r] if line == 0 else "", name_w), style=shade + head_style)
                for c, cell in zip(cols, columns):
                    piece = cell[line]
                    piece.stylize(shade, 0, len(piece))  # under the item's own style
                    text.append_text(piece)
                    text.append(" ", style=shade)
                out.append(text)
        if below:
            out.append(Text(f"↓{below} more SAEs", style=dim))
        for text in out:
            text.truncate(width, overflow="ellipsis")
            text.no_wrap = True
        return Text("\n").join(out[:height])

    def _cell_lines(self, row: int, col: int, n_lines: int, width: int, chosen: Style, dim: Style) -> list[Text]:
        """The `n_lines` lines of one cell, each `width` cells wide: its nodes, or a window of them and `+N more`."""
        cells = self.cells
        assert cells is not None
        nodes = cells.cell(row, col)
        here = (row, col) == (cells.row, cells.col)
        out: list[Text] = []
        if len(nodes) > n_lines:  # a window that shows the selection, and a line (or a suffix) counting the rest
            shown = max(1, n_lines - 1)
            first = _window(len(nodes), shown, cells.k) if here else 0
            window = nodes[first:first + shown]
            above, below = first, len(nodes) - first - len(window)
            more = f"↑{above} ↓{below}" if above else f"+{below} more"
        else:
            window, first, more = nodes, 0, ""
        for j, node in enumerate(window):
            text = node_item(node)
            if n_lines == 1 and more:  # no line to spare: `561 -3.47 +24`
                suffix = f" +{len(nodes) - 1}"
                text = _fit(text, max(0, width - len(suffix))).rstrip() + suffix
            elif node.feature is not None and width - cell_len(text) > 4:
                label = self.label(node.sae, node.feature)
                text = f"{text} {label}" if label else text
            selected = here and first + j == cells.k
            out.append(Text(_fit(text, width), style=chosen if selected else (dim if node.feature is None else Style())))
        if more and n_lines > 1:
            out.append(Text(_fit(more, width), style=dim))
        while len(out) < n_lines:
            out.append(Text(" " * width))
        return out
