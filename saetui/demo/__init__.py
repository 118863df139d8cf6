"""The bundled demo: a tiny Gemma-2 model and a JumpReLU SAE trained here on a planted-structure corpus.

They ship in `assets/` and load through the same code paths as any local model and SAE, so
`saetui` works on a fresh machine with no downloads. `train.py` made them, `report.py` measures them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from saetui.models.model import ModelWithHooks
    from saetui.sae.index import IndexPlace
    from saetui.sae.manager import SAEManager

ASSETS = Path(__file__).parent / "assets"
MODEL_DIR = ASSETS / "model"
SAE_DIR = ASSETS / "sae"
INDEX_DIR = ASSETS / "index"
DEMO_NAME = "saetui-demo"
#: The layer the demo SAE reads (blocks.L.hook_resid_post).
SAE_LAYER = 2


def load_demo(device: str | None = None, sae_dir: Path = SAE_DIR) -> tuple[ModelWithHooks, SAEManager]:
    """The demo model with its SAE (named "demo") loaded, ready for SAEAnalyzer or SteeringEngine."""
    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import SAEManager

    model = ModelWithHooks.from_pretrained(str(MODEL_DIR), device=device, dtype="float32")
    model.name = DEMO_NAME
    saes = SAEManager(model)
    saes.load(str(sae_dir), name="demo")
    saes.get("demo").spec = "saetui-demo-sae"  # the same identity wherever the package is installed
    return model, saes


def index_place() -> IndexPlace:
    """Where the demo's index is (package data, read-only) and where the user's labels for it are saved
    (their config folder), for `find_index`'s roots."""
    from saetui.paths import config_dir
    from saetui.sae.index import IndexPlace

    return IndexPlace(INDEX_DIR, labels_dir=config_dir(create=False) / "demo-labels")
