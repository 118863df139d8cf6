"""Pane: a tab's widget that owns its workers; a failed worker becomes one `JobFailed` message for the app.
Panes also carry the palette commands and exports that act on what they show (`export` writes one)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.containers import Vertical
from textual.worker import Worker, WorkerState

from saetui.errors import one_line
from saetui.tui.messages import JobFailed

if TYPE_CHECKING:
    from saetui.session import Session


class Pane(Vertical):
    def __init__(self, session: Session, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.session = session

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.post_message(JobFailed(event.worker.group, one_line(event.worker.error)))

    def export(self, kind: str, data: dict[str, Any]) -> None:
        """Write `data` as saetui-KIND-YYYYmmdd-HHMMSS.json in the working folder (a second one in the same
        second gets its own name) and say where, or why not."""
        from saetui.files import stamped_path, write_json_atomic

        path = stamped_path(lambda stamp: Path.cwd() / f"saetui-{kind}-{stamp}.json")
        try:
            write_json_atomic(path, data)
        except OSError as exc:
            self.notify(f"could not write {path}: {exc}", severity="error")
            return
        self.notify(f"{kind} written to {path}")
