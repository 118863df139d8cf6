"""Pane: a tab's widget that owns its workers; a failed worker becomes one `JobFailed` message for the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.containers import Vertical
from textual.worker import Worker, WorkerState

from saetui.tui.messages import JobFailed

if TYPE_CHECKING:
    from saetui.session import Session


def one_line(error: BaseException | None) -> str:
    return " ".join(str(error).split()) or type(error).__name__


class Pane(Vertical):
    def __init__(self, session: Session, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.session = session

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.post_message(JobFailed(event.worker.group, one_line(event.worker.error)))
