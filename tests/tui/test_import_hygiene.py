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
