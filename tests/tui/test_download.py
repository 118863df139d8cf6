"""The app while a model downloads: the download panel (file, bytes, rate, ETA), Ctrl+S stops it, failures in
one line; against the Hub stand-in (tests/hub_stand_in.py) and a scripted session for the fixed pictures."""

from __future__ import annotations

import threading

import pytest

from saetui.hub import DownloadCancelled, Progress
from saetui.session import Session
from saetui.tui.app import SaeTuiApp
from saetui.tui.screens.error import ErrorScreen
from saetui.tui.snapshot import settle
from saetui.tui.widgets.download_panel import DownloadPanel, describe
from tests.hub_stand_in import MODEL_REPO, RELEASE

PLAN = Progress("plan", "model org/model", n_files=3, all_total=5_012_000_000, host="https://hub.example",
                cache="/data/hf/hub")
MIDWAY = Progress("file", "model org/model", "model-00001-of-00002.safetensors", 2, 3, done=1_210_000_000,
                  total=4_990_000_000, all_done=1_230_000_000, all_total=5_012_000_000, files_done=1, elapsed=15.0,
                  file_elapsed=14.8, host="https://hub.example", cache="/data/hf/hub")


class DownloadingSession(Session):
    """A load that reports a fixed download and then waits until it is stopped (or released by the test)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.started = threading.Event()

    def load(self, model=None, saes=None, *, refresh=False, progress=None, cancel=None, **kwargs):
        progress(PLAN)
        progress(MIDWAY)
        self.started.set()
        while not (cancel.is_set() or self.release.is_set()):
            cancel.wait(0.02)
        raise DownloadCancelled("download of model org/model cancelled; the 1 finished file(s) are kept in the cache")


def panel_text(app) -> str:
    return str(app.query_one(DownloadPanel).render())


def test_the_panel_says_file_bytes_rate_and_eta():
    from textual.content import Content

    first, second = (Content.from_markup(line) for line in describe(MIDWAY).splitlines())
    assert first.plain == "model org/model: model-00001-of-00002.safetensors (2/3)"
    # 1.23 GB in 15 s: 82 MB/s, and 3.78 GB left at that rate: 46 s
    assert second.plain.endswith(" 1.2/5.0 GB · 82.0 MB/s · ETA 46s · all 24%"), second.plain
    assert second.cell_length <= 76  # inside the panel at 80 columns


async def test_ctrl_s_stops_the_download_and_says_what_is_kept():
    session = DownloadingSession()
    app = SaeTuiApp(session, model="org/model", saes=["r/s"], restore=False)
    async with app.run_test(size=(80, 24)) as pilot:
        while not session.started.is_set():
            await pilot.pause(0.02)
        await pilot.pause(0.2)
        panel = app.query_one(DownloadPanel)
        assert panel.display and "model-00001-of-00002.safetensors (2/3)" in panel_text(app)
        assert "ETA 46s" in panel_text(app) and "Ctrl+S stops" in panel.border_subtitle
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not panel.display and not isinstance(app.screen, ErrorScreen)
        assert any("cancelled" in n.message for n in app._notifications)
        assert "download stopped" in str(app.query_one("#status").render())


async def test_a_download_from_the_hub_shows_progress_then_the_model(hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 65536)  # several updates for the tiny model's weights
    hub.rate = 400_000
    seen: list[Progress] = []
    shown = DownloadPanel.show_progress
    monkeypatch.setattr(DownloadPanel, "show_progress", lambda self, p: (seen.append(p), shown(self, p)))
    app = SaeTuiApp(model=MODEL_REPO, saes=[f"{RELEASE}/blocks.1"], restore=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.session.ready and app.session.last is not None  # loaded and analyzed
        assert not app.query_one(DownloadPanel).display
    weights = [p for p in seen if p.filename == "model.safetensors"]
    assert any(0 < p.done < p.total for p in weights), [(p.done, p.total) for p in weights]
    assert {p.filename for p in seen} >= {"config.json", "model.safetensors", "blocks.1/sae_weights.safetensors"}


async def test_the_hub_gone_and_nothing_cached_is_a_one_line_modal(hub):
    url = hub.url
    hub.stop()
    app = SaeTuiApp(model=MODEL_REPO, saes=[f"{RELEASE}/blocks.1"], restore=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ErrorScreen)
        first = app.screen.message.splitlines()[0]
        assert first.startswith(f"cannot reach the Hub at {url} (connection refused) for model {MODEL_REPO}")
        assert "HF_HUB_OFFLINE=1" in first


@pytest.mark.parametrize("size", [(80, 24)])
def test_snapshot_mid_download(snap_compare, size):
    session = DownloadingSession()

    async def run_before(pilot):
        while not session.started.is_set():
            await pilot.pause(0.02)
        await pilot.pause(0.3)
        prompt = pilot.app.query_one("#prompt")
        prompt.cursor_blink = False
        prompt.blur()
        await pilot.pause()

    app = SaeTuiApp(session, model="org/model", saes=["r/s"], prompt="The capital of France is", restore=False)
    try:
        assert snap_compare(app, terminal_size=size, run_before=run_before)
    finally:
        session.release.set()
