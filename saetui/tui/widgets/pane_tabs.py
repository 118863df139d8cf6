"""TabbedPanes: the three panes under one row of tab headers, drawn by one widget (PaneTabs).

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
from textual.app import ComposeResult
from textual.message import Message
from textual.reactive import reactive
from textual.renderables.bar import Bar
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import ContentSwitcher


class PaneTabs(Widget, can_focus=False):
    """One row of tab labels and the underline bar beneath them; `active` is the id of the pane shown."""

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

    class Clicked(Message):
        """A tab header was clicked: show `pane`."""

        def __init__(self, pane: str) -> None:
            super().__init__()
            self.pane = pane

    def __init__(self, tabs: list[tuple[str, str]], active: str, *, id: str | None = None) -> None:
        """`tabs`: (pane id, label) in order; `active`: the pane shown first."""
        super().__init__(id=id)
        self.tabs = tabs
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
            self.post_message(self.Clicked(self.tabs[i][0]))

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self.hover = self._tab_at(event.x) if event.y == 0 else -1

    def on_leave(self, _: events.Leave) -> None:
        self.hover = -1


class PaneSlot(Widget):
    """Where one pane goes (mounted after the first frame)."""

    DEFAULT_CSS = "PaneSlot { height: auto; }"

    def render(self) -> str:
        return ""  # empty until its pane is in (a bare Widget draws its name: TabPane's first frame showed "TabPane#tokens")


class TabbedPanes(Widget):
    """Tab headers over a ContentSwitcher of PaneSlots; `active` is the id of the slot shown."""

    ALLOW_MAXIMIZE = True
    DEFAULT_CSS = """
    TabbedPanes { height: auto; }
    TabbedPanes > PaneTabs { dock: top; }
    """

    active: reactive[str] = reactive("", init=False)

    def __init__(self, tabs: list[tuple[str, str]], initial: str, *, id: str | None = None) -> None:
        """`tabs`: (slot id, label) in order; `initial`: the slot shown first."""
        super().__init__(id=id)
        self._tabs, self._initial = tabs, initial
        self.set_reactive(TabbedPanes.active, initial)

    def compose(self) -> ComposeResult:
        yield PaneTabs(self._tabs, self._initial)
        with ContentSwitcher(initial=self._initial):
            for slot, _label in self._tabs:
                yield PaneSlot(id=slot)

    def watch_active(self, active: str) -> None:
        self.query_one(PaneTabs).active = active
        self.query_one(ContentSwitcher).current = active

    def on_pane_tabs_clicked(self, message: PaneTabs.Clicked) -> None:
        message.stop()
        self.active = message.pane

    def _on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """A widget of a hidden pane focused from code shows its pane, as TabbedContent does (TabPane.Focused):
        the focus is never on something the user cannot see."""
        slot = next((node for node in event.widget.ancestors_with_self if isinstance(node, PaneSlot)), None)
        if slot is not None and slot.id is not None and slot.id != self.active:
            self.active = slot.id
