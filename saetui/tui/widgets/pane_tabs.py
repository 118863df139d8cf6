"""The three panes under one row of tab headers: PaneTabs draws the headers, PaneSwitcher shows one pane.

Textual's TabbedContent draws its headers with a Tabs widget of ~8 nested widgets (a scroll container, a bar, a
row, one widget per tab, the underline), composed level by level: on the first frame that was ~13 of the ~36 ms
the app spent past a bare Textual app (issue 28). PaneTabs draws the same two rows in one widget, with Textual's
own styles (a tab's label in $foreground 50%, the active and the hovered one in $foreground, the underline bar
under the active label, moving as Tabs' does) and the same clicks (a label, or the bar under it, switches to its
pane). The headers never take the focus (F2/F3/F4 switch panes).
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.reactive import reactive
from textual.renderables.bar import Bar
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import ContentSwitcher


class PaneSwitcher(ContentSwitcher):
    """The panes, one shown at a time (`current`: the shown pane's id), under the PaneTabs that name them.

    The panes are mounted straight into it, after the first frame (app._mount_panes), with no wrapper between it and
    them or around it and its headers (as TabbedContent has, and the PaneSlots and TabbedPanes that were here): a key
    for the token table bubbles through every container above the table before the table's own bindings run, and
    Textual's compositor asks every container over a changed row for its lines, so each level cost every key a
    little (issue 28)."""

    ALLOW_MAXIMIZE = True  # maximizing a pane's widget maximizes the pane, as TabbedContent's panes do

    def __init__(self, *, initial: str, id: str | None = None) -> None:
        """`initial`: the id of the pane shown first."""
        super().__init__(id=id, initial=initial)
        self.initial = initial

    async def add_panes(self, *panes: Widget) -> None:
        """Mount the panes (their ids are the headers' pane ids), only the current one shown."""
        for pane in panes:
            pane.display = pane.id == self.current
        await self.mount_all(panes)

    def watch_current(self, old: str | None, new: str | None) -> None:
        if self.children:  # before the panes are in, only the headers move
            super().watch_current(old, new)

    def _on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """A widget of a hidden pane focused from code shows its pane, as TabbedContent does (TabPane.Focused):
        the focus is never on something the user cannot see."""
        pane = next((node for node in event.widget.ancestors_with_self if node.parent is self), None)
        if pane is not None and pane.id is not None and pane.id != self.current:
            self.current = pane.id


class PaneTabs(Widget, can_focus=False):
    """One row of tab labels and the underline bar beneath them, for a PaneSwitcher: `active` follows the switcher's
    `current` (the id of the pane shown), and a click on a label shows its pane."""

    # The looks of textual.widgets.Tab and its Underline (textual/widgets/_tabs.py), as component classes.
    DEFAULT_CSS = """
    PaneTabs {
        width: 100%;
        height: 2;
        pointer: pointer;
        & > .pane-tabs--tab { color: $foreground 50%; }
        & > .pane-tabs--active, & > .pane-tabs--hover { color: $foreground; }
        & > .pane-tabs--bar { color: $block-cursor-background; background: $foreground 10%; }
        &:ansi {
            & > .pane-tabs--tab { text-style: dim; }
            & > .pane-tabs--active { text-style: not dim bold; }
            & > .pane-tabs--bar { color: $block-cursor-background; background: $border-blurred; }
        }
    }
    """
    COMPONENT_CLASSES = {"pane-tabs--tab", "pane-tabs--active", "pane-tabs--hover", "pane-tabs--bar"}
    ALLOW_SELECT = False  # as Tab: a click switches panes, it does not select text

    active: reactive[str] = reactive("", init=False)
    highlight_start: reactive[float] = reactive(0.0)  # the underline's highlighted columns, as Underline's
    highlight_end: reactive[float] = reactive(0.0)
    hover: reactive[int] = reactive(-1)  # the label under the mouse, -1: none

    def __init__(self, tabs: list[tuple[str, str]], switcher: PaneSwitcher, *, id: str | None = None) -> None:
        """`tabs`: (pane id, label) in order; `switcher`: the panes they name (composed after the headers)."""
        super().__init__(id=id)
        self.tabs, self.switcher = tabs, switcher
        active = switcher.initial
        self.set_reactive(PaneTabs.active, active)
        start, end = self._span(active)
        self.set_reactive(PaneTabs.highlight_start, float(start))
        self.set_reactive(PaneTabs.highlight_end, float(end))

    def _spans(self) -> list[tuple[int, int]]:
        """Each label's columns (start, end), without the one-cell padding either side (as Tabs' underline)."""
        spans, x = [], 0
        for _pane, label in self.tabs:
            spans.append((x + 1, x + 1 + len(label)))
            x += len(label) + 2
        return spans

    def _span(self, pane: str) -> tuple[int, int]:
        ids = [pane_id for pane_id, _ in self.tabs]
        return self._spans()[ids.index(pane)] if pane in ids else (0, 0)

    def render_line(self, y: int) -> Strip:
        """Row 0: the labels, each padded by a cell of background either side (as Tab's padding); row 1: the bar."""
        width = self.size.width
        if y == 0:
            segments = []
            for i, (pane, label) in enumerate(self.tabs):
                kind = "active" if pane == self.active else "hover" if i == self.hover else "tab"
                style = self.get_component_rich_style(f"pane-tabs--{kind}")
                pad = Style.from_color(bgcolor=style.bgcolor)
                segments += [Segment(" ", pad), Segment(label, style), Segment(" ", pad)]
            used = sum(len(label) + 2 for _, label in self.tabs)
            segments.append(Segment(" " * max(0, width - used), pad))
            return Strip(segments).crop(0, width)
        if y == 1:
            bar = self.get_component_rich_style("pane-tabs--bar")
            renderable = Bar(highlight_range=(self.highlight_start, self.highlight_end) if self.active else (0, 0),
                             highlight_style=Style.from_color(bar.color), background_style=Style.from_color(bar.bgcolor))
            console = self.app.console
            segments = list(console.render(renderable, console.options.update_width(width)))
            return Strip(segments).apply_style(Style.from_color(bgcolor=self.rich_style.bgcolor)).crop(0, width)
        return Strip.blank(width, self.rich_style)

    def on_mount(self) -> None:
        self.watch(self.switcher, "current", self._follow, init=False)

    def _follow(self, current: str | None) -> None:
        self.active = current or ""

    def watch_active(self, active: str) -> None:
        """The underline slides to the new label in 0.3 s, as Tabs' does."""
        start, end = self._span(active)
        self.animate("highlight_start", float(start), duration=0.3, level="basic")
        self.animate("highlight_end", float(end), duration=0.3, level="basic")

    def _tab_at(self, x: int) -> int:
        """The label whose cells (padding included) hold column `x`, or -1."""
        for i, (start, end) in enumerate(self._spans()):
            if start - 1 <= x <= end:
                return i
        return -1

    def on_click(self, event: events.Click) -> None:
        i = self._tab_at(event.x)
        if i >= 0:
            event.stop()
            self.switcher.current = self.tabs[i][0]  # shown, not focused: the keys stay where they were

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self.hover = self._tab_at(event.x) if event.y == 0 else -1

    def on_leave(self, _: events.Leave) -> None:
        self.hover = -1
