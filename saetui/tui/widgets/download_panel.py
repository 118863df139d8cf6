"""DownloadPanel: what the model load is fetching from the Hub (file, bytes, rate, ETA), shown only while it does.

Downloads run in the load worker and report through saetui.hub's `Progress` sink; `ProgressRelay` is that sink:
it posts `DownloadProgress` to the app from the worker thread, and a newer one replaces any still waiting in the
app's queue (`can_replace`), so the panel shows the latest state and the app stays responsive however fast the
chunks come.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.widgets import Static

from saetui.tui.markup import escape

if TYPE_CHECKING:
    from saetui.hub_progress import Progress

BAR_WIDTH = 24


def bar(done: int, total: int | None, width: int = BAR_WIDTH) -> str:
    """`━━━━━━╺━━━━` as a fraction of width (the same glyphs Textual's ProgressBar draws)."""
    if not total:
        return "╺" + "━" * (width - 1)
    filled = max(0, min(width, round(width * done / total)))
    return "[b $accent]" + "━" * filled + "[/]" + "[dim]" + "━" * (width - filled) + "[/]"


def describe(p: Progress) -> str:
    """Two lines that fit 80 columns: which file of which model or SAE, then its bytes, the rate, the ETA and
    how far the whole download is."""
    from saetui.hub_progress import human_bytes, human_time  # imported when a download reports (not at start)

    if p.event == "plan":
        return (f"{escape(p.what)}: {p.n_files} file{'s' * (p.n_files != 1)} to fetch from {escape(p.host)}\n"
                f"{bar(0, p.all_total)} 0/{human_bytes(p.all_total)}")
    name = p.filename.rsplit("/", 1)[-1]
    rate = f"{human_bytes(p.rate)}/s" if p.rate else "…"
    eta = f"ETA {human_time(p.eta)}" if p.eta is not None else "ETA ?"
    whole = f"all {100 * p.all_done // p.all_total}%" if p.all_total else ""
    return (f"{escape(p.what)}: {escape(name)} ({p.file_no}/{p.n_files})\n"
            f"{bar(p.done, p.total)} {human_pair(p.done, p.total)} · {rate} · {eta} · {whole}")


def human_pair(done: int, total: int | None) -> str:
    """`10.5/38.4 MB`, or `900.0 kB/38.4 MB` when the units differ."""
    from saetui.hub_progress import human_bytes

    a, b = human_bytes(done), human_bytes(total)
    unit = b.rpartition(" ")[2]
    return f"{a.rpartition(' ')[0]}/{b}" if a.endswith(" " + unit) and unit != "B" else f"{a}/{b}"


class DownloadPanel(Static):
    """Hidden until a download reports; `finish()` hides it again."""

    # Shown by a class, not by `display`: an inline style would outrank the rule that hides the whole screen when
    # the terminal is too small (saetui.tcss).
    DEFAULT_CSS = "DownloadPanel { display: none; } DownloadPanel.-active { display: block; }"

    def on_mount(self) -> None:
        self.border_title = "Download"

    def show_progress(self, p: Progress) -> None:
        self.update(describe(p))
        self.border_subtitle = escape(f"Ctrl+S stops · into {p.cache}")
        self.add_class("-active")

    def finish(self) -> None:
        self.remove_class("-active")


class ProgressRelay:
    """A saetui.hub progress sink for the load worker: posts DownloadProgress to `app` (thread-safe)."""

    live = False  # no terminal bar: the app owns the screen

    def __init__(self, app: App[Any]) -> None:
        self.app = app

    def __call__(self, p: Progress) -> None:
        from saetui.tui.messages import DownloadProgress

        self.app.post_message(DownloadProgress(p))
