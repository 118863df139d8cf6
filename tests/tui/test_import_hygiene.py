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

def css_files(app):
    return {"css:" + path.rsplit("/", 1)[-1] for path, _ in app.stylesheet.source if path.endswith(".tcss")}

async def recording(self):
    # on_ready: the first frame is on screen, the panes not yet in
    seen["at first frame"] = set(sys.modules) | css_files(self)
    await mount_panes(self)
    seen["panes in"] = set(sys.modules) | css_files(self)

SaeTuiApp._mount_panes = recording

async def main():
    app = SaeTuiApp(restore=False, persist=False)
    async with app.run_test(size=(80, 24)) as pilot:
        while "panes in" not in seen:
            await asyncio.sleep(0.01)
        assert app.query_one("#token-table") is not None and app.query_one("#specs") is not None
asyncio.run(main())
for name in ("saetui.session", "saetui.tui.panes.tokens", "saetui.tui.panes.steer", "saetui.hub", "torch",
             "saetui.tui.messages", "saetui.settings", "saetui.steering.spec", "saetui.hub_progress",
             "saetui.tui.screens.error", "textual.widgets._tabs", "css:saetui.tcss", "css:panes.tcss"):
    print(name, name in seen["at first frame"], name in seen["panes in"])
"""


def test_first_frame_is_drawn_before_the_panes_and_the_session_are_imported():
    """The first frame needs Textual and the prompt box only (issue 28): the panes and the session are imported and
    mounted after it (their CSS parsed then too), torch later still, in the load worker."""
    out = subprocess.run([sys.executable, "-c", FIRST_FRAME], check=True, capture_output=True, text=True).stdout
    where = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert where["saetui.session"] == ["False", "True"]
    assert where["saetui.tui.panes.tokens"] == ["False", "True"]
    assert where["saetui.tui.panes.steer"] == ["False", "True"]
    assert where["saetui.hub"][0] == "False"
    assert where["torch"][0] == "False"
    # ... nor what only the panes, the load and its messages use (a first start has no saved session to read)
    assert where["saetui.tui.messages"] == ["False", "True"]
    assert where["saetui.settings"] == ["False", "True"]
    assert where["saetui.steering.spec"] == ["False", "True"]
    assert where["saetui.hub_progress"][0] == "False"
    assert where["saetui.tui.screens.error"][0] == "False"
    assert where["textual.widgets._tabs"][0] == "False"  # the tab headers are one widget (widgets/pane_tabs.py)
    # the panes' and screens' CSS is parsed when they go in; the first frame's is there from the start
    assert where["css:saetui.tcss"] == ["True", "True"]
    assert where["css:panes.tcss"] == ["False", "True"]


def test_every_text_box_is_one_whose_editing_keys_run_in_order():
    """saetui.tui.widgets.text_input's Input and TextArea, not Textual's (whose backspace can run after the
    characters typed after it): no other module of the app imports Textual's."""
    import ast
    from pathlib import Path

    import saetui.tui

    root = Path(saetui.tui.__file__).parent
    wrong = []
    for path in root.rglob("*.py"):
        if path.name == "text_input.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("textual.widgets"):
                wrong += [f"{path.relative_to(root)}: {a.name}" for a in node.names if a.name in ("Input", "TextArea", "MaskedInput")]
    assert not wrong
