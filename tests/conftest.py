"""Shared fixtures: tiny random models for every supported architecture, and SAEs built from sae-lens configs.

Nothing here touches the network: HF_HUB_OFFLINE is set for the whole run, and tests of downloads use `hub`,
a loopback Hub stand-in (tests/hub_stand_in.py) with huggingface_hub pointed at it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def pytest_collection_modifyitems(config, items):
    """`inductor` tests compile for minutes on a CPU: they run only when -m names them (-m inductor)."""
    if "inductor" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="compiles with inductor for minutes on a CPU: run with -m inductor")
    for item in items:
        if "inductor" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path_factory, monkeypatch):
    """Config and cache (presets, last session, indexes) in a fresh folder per test, never the user's."""
    root = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(root / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory):
    """arch -> directory of a saved tiny model; built on first use."""
    from saetui.models.synthetic import tiny_model_dir

    root = tmp_path_factory.mktemp("models")
    cache: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in cache:
            cache[arch] = tiny_model_dir(arch, root / arch)
        return cache[arch]

    return get


@pytest.fixture(scope="session")
def gemma2_dir(model_dirs) -> Path:
    return model_dirs("gemma2")


@pytest.fixture(scope="session")
def gemma2(gemma2_dir):
    """A loaded tiny Gemma-2 model (4 layers, width 64). Tests must not change its weights."""
    from saetui.models.model import ModelWithHooks

    return ModelWithHooks.from_pretrained(str(gemma2_dir))


@pytest.fixture()
def make_sae():
    """make_sae(d_in, d_sae, hook) -> a random sae-lens JumpReLUSAE that fires sparsely."""
    from saetui.models.synthetic import random_jumprelu_sae

    return random_jumprelu_sae


@pytest.fixture()
def sae_dir(tmp_path, make_sae) -> Path:
    """A local sae-lens directory for the tiny Gemma-2 at blocks.1.hook_resid_post, width 256."""
    sae = make_sae(64, 256, "blocks.1.hook_resid_post")
    sae.save_model(tmp_path / "sae")
    return tmp_path / "sae"


# ---------------------------------------------------------------------- a Hub stand-in (tests/hub_stand_in.py)
@pytest.fixture(scope="session")
def stand_in_repos(tmp_path_factory):
    """The Hub stand-in's repos (tests/hub_stand_in.py), built once."""
    from tests.hub_stand_in import build_repos

    return build_repos(tmp_path_factory.mktemp("stand-in"))


def point_hub_at(url: str, home: Path, monkeypatch) -> None:
    """huggingface_hub's import-time constants, as HF_ENDPOINT=url HF_HOME=home (online) would have set them."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    if hasattr(constants, "AGENT_HARNESSES_PATH"):
        monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(home / "agent_harnesses.json"))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def hub(stand_in_repos, tmp_path, monkeypatch):
    """A loopback Hub stand-in serving copies of the repos, huggingface_hub pointed at it (and at a fresh cache),
    and its sae-lens releases registered."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    from tests.hub_stand_in import Repo, StandInHub, releases

    repos = {k: Repo(dict(r.files), r.gated, r.private) for k, r in stand_in_repos.items()}
    server = StandInHub(repos).start()
    point_hub_at(server.url, tmp_path / "hf", monkeypatch)
    directory = get_pretrained_saes_directory()
    for name, lookup in releases().items():
        monkeypatch.setitem(directory, name, lookup)
    yield server
    server.stop()


def hook_ids(module) -> dict[str, tuple]:
    """Every forward and pre-forward hook id in `module`, by submodule name.

    transformers installs hooks of its own (to record outputs), so tests compare this before and
    after a call instead of expecting none at all.
    """
    return {name: (tuple(m._forward_hooks), tuple(m._forward_pre_hooks)) for name, m in module.named_modules()}


@pytest.fixture(autouse=True)
def _no_hook_left_on_the_shared_model(request):
    """A test that leaves a hook on the session's tiny Gemma-2 would change what every later test sees."""
    yield
    if "gemma2" in request.fixturenames:
        model = request.getfixturevalue("gemma2").model
        left = [name for name, m in model.named_modules()
                for h in [*m._forward_hooks.values(), *m._forward_pre_hooks.values()]
                if not getattr(h, "__module__", "").startswith("transformers.")]  # its own output-capturing hooks stay
        assert not left, f"hooks left on {left}"
