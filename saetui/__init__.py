"""saetui: look inside a language model through a sparse autoencoder.

The public API is imported lazily (PEP 562) so that `import saetui` stays fast and never imports
torch; the first attribute access loads the module that defines it.

    from saetui import ModelWithHooks, SAEManager, SAEAnalyzer
    model = ModelWithHooks.from_pretrained("google/gemma-2-2b")
    saes = SAEManager(model)
    saes.load("gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical")
    result = SAEAnalyzer(model, saes).analyze("The capital of France is")
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ModelWithHooks": "saetui.models.model",
    "TokenBatch": "saetui.models.model",
    "ActivationCollector": "saetui.activations.collector",
    "Activations": "saetui.activations.collector",
    "ActivationCache": "saetui.activations.cache",
    "SAEManager": "saetui.sae.manager",
    "LoadedSAE": "saetui.sae.manager",
    "SAEAnalyzer": "saetui.sae.analyzer",
    "AnalysisResult": "saetui.sae.analyzer",
    "list_registry": "saetui.sae.pretrained",
    "SaetuiError": "saetui.errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from saetui.activations.cache import ActivationCache
    from saetui.activations.collector import ActivationCollector, Activations
    from saetui.errors import SaetuiError
    from saetui.models.model import ModelWithHooks, TokenBatch
    from saetui.sae.analyzer import AnalysisResult, SAEAnalyzer
    from saetui.sae.manager import LoadedSAE, SAEManager
    from saetui.sae.pretrained import list_registry


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'saetui' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
