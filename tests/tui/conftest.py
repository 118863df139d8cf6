"""The TUI tests' demo model and SAEs, read from disk once per module.

Every app here (and every Session a test makes) loads the bundled demo through `demo.load_demo`. The
model and SAEs only get read: analysis, search, generation and attribution hook the model for one call
and leave it as they found it. So a module loads them once, and each test's sessions get that model and
those SAEs in a fresh SAEManager (an SAE a test loads beside them stays its own); everything a session
keeps (analysis, specs, labels, indexes) is still per session. A test that leaves something on the model
fails here; one that must load its own copy is marked `own_demo`.
"""

from __future__ import annotations

import copy

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "own_demo: the test's sessions load their own demo model (tests/tui/conftest.py)")


@pytest.fixture(scope="module")
def demo_parts() -> dict:
    """The module's demo, loaded on first use: {"model", "saes", "weights" (a copy, to check nothing changed)}."""
    return {}


def _our_hooks(model) -> list[str]:
    """Forward hooks on the model that are not transformers' own (its output-capturing ones stay)."""
    return [name for name, m in model.named_modules()
            for h in [*m._forward_hooks.values(), *m._forward_pre_hooks.values()]
            if not getattr(h, "__module__", "").startswith("transformers.")]


@pytest.fixture(autouse=True)
def _shared_demo(request, monkeypatch):
    if request.node.get_closest_marker("own_demo"):
        yield
        return
    from saetui import demo

    shared = request.getfixturevalue("demo_parts")
    original = demo.load_demo

    def load_demo(device: str | None = None, sae_dir=None):
        if device not in (None, "cpu") or sae_dir is not None:
            return original(device=device, sae_dir=sae_dir)
        if not shared:
            model, saes = original()
            shared.update(model=model, saes=saes, weights=[p.detach().clone() for p in model.model.parameters()])
        fresh = copy.copy(shared["saes"])
        fresh._saes = dict(shared["saes"]._saes)  # the same loaded SAEs, in a list of the test's own
        return shared["model"], fresh

    monkeypatch.setattr(demo, "load_demo", load_demo)
    yield
    if shared:
        import torch

        model = shared["model"].model
        assert not _our_hooks(model), f"hooks left on the shared demo model: {_our_hooks(model)}"
        assert all(torch.equal(a, b) for a, b in zip(shared["weights"], model.parameters())), "the shared demo's weights changed"


def token_side_rows(app, index: int) -> list[tuple[str, int]]:
    """(sae, feature) as the side list shows token `index`: every SAE's features, the displayed SAE first, the
    dense unlabelled ones (Session.dense_features) moved after the others, each group in its own order."""
    ordered = sorted(app.analysis.saes, key=lambda s: s.name != app.sae_name)
    return dense_last(app, [(s.name, f) for s in ordered for f, _ in s.per_token[index]])


def dense_last(app, rows: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """`rows` with the dense unlabelled features (Session.dense_features) after the others, each group in its order."""
    session = app.session
    dense = {sae: session.dense_features(sae) or frozenset() for sae, _ in rows}

    def is_dense(key: tuple[str, int]) -> bool:
        return key[1] in dense[key[0]] and not session.labels.get(key, "")

    return [k for k in rows if not is_dense(k)] + [k for k in rows if is_dense(k)]
