"""Pilot tests for the defects of issue 9, one (or more) per numbered defect; each failed before its fix."""

from __future__ import annotations

import threading

from saetui.session import Session
from saetui.tui import app as app_module
from saetui.tui.app import SaeTuiApp
from saetui.tui.snapshot import settle

PROMPT = "The capital of France is Paris. Anna has a"


def notes(app) -> list[str]:
    return [n.message for n in app._notifications]


# ---------------------------------------------------------------- 3: quitting never waits
class SlowLoadSession(Session):
    """A model load that only ends when the test says so (as a 20 s download would)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.thread: threading.Thread | None = None

    def load(self, *args, **kwargs):
        self.thread = threading.current_thread()
        app = self.app
        app.call_from_thread(app.run_action, "quit")  # Ctrl+Q while the load is running
        self.release.wait(30)
        return super().load(*args, **kwargs)


def test_quit_while_loading_does_not_join_the_load_worker():
    session = SlowLoadSession()
    app = SaeTuiApp(session, prompt=PROMPT)
    session.app = app
    try:
        app.run(headless=True, size=(80, 24))
        # App.run() returned (asyncio.run closed its loop) while the load is still running
        assert session.thread is not None and session.thread.is_alive()
        assert not session.release.is_set()
    finally:
        session.release.set()
    from saetui import state

    saved, _ = state.load_session()
    assert saved["prompt"] == PROMPT  # the session was saved before the exit


def test_run_ends_the_process_without_waiting_for_threads(monkeypatch):
    calls = []
    monkeypatch.setattr(SaeTuiApp, "run", lambda self, **kw: None)
    monkeypatch.setattr(app_module.os, "_exit", lambda code: calls.append(code))
    app_module.run()
    assert calls == [0]
