"""The core never imports Textual; the app module imports neither torch nor transformers (they load in workers)."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "; import sys; print(' '.join(sys.modules))"],
                         check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_app_module_does_not_import_torch():
    mods = _modules_after("import saetui.tui.app")
    assert "textual" in mods
    assert not {"torch", "transformers", "sae_lens"} & mods


def test_core_does_not_import_textual():
    mods = _modules_after(
        "import saetui.session, saetui.cli, saetui.sae.analyzer, saetui.steering.generate, saetui.activations.cache"
    )
    assert not any(m == "textual" or m.startswith("textual.") for m in mods)


FIRST_FRAME = """
import asyncio, sys
from saetui.tui.app import SaeTuiApp

seen = {}
mount_panes = SaeTuiApp._mount_panes

async def recording(self):
    seen["at first frame"] = set(sys.modules)  # on_ready: the first frame is on screen, the panes not yet in
    await mount_panes(self)
    seen["panes in"] = set(sys.modules)

SaeTuiApp._mount_panes = recording

async def main():
    app = SaeTuiApp(restore=False, persist=False)
    async with app.run_test(size=(80, 24)) as pilot:
        while "panes in" not in seen:
            await asyncio.sleep(0.01)
        assert app.query_one("#token-table") is not None and app.query_one("#specs") is not None
asyncio.run(main())
for name in ("saetui.session", "saetui.tui.panes.tokens", "saetui.tui.panes.steer", "saetui.hub", "torch"):
    print(name, name in seen["at first frame"], name in seen["panes in"])
"""


def test_first_frame_is_drawn_before_the_panes_and_the_session_are_imported():
    """The first frame needs Textual and the prompt box only (issue 28): the panes and the session are imported and
    mounted after it, torch later still, in the load worker."""
    out = subprocess.run([sys.executable, "-c", FIRST_FRAME], check=True, capture_output=True, text=True).stdout
    where = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert where["saetui.session"] == ["False", "True"]
    assert where["saetui.tui.panes.tokens"] == ["False", "True"]
    assert where["saetui.tui.panes.steer"] == ["False", "True"]
    assert where["saetui.hub"][0] == "False"
    assert where["torch"][0] == "False"
