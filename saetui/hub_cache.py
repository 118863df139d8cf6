"""What a download is about and what the HF cache already holds: `Target` (a model, or a registry SAE's folder
of a repo), `Stored` (a target complete in the cache), the hub errors, and the lookups that read the cache from
disk alone (`cached`, `cached_repos`, a target's snapshot and what it lacks). saetui.hub fetches what is missing.

huggingface_hub reads HF_ENDPOINT, HF_HOME/HF_HUB_CACHE and HF_HUB_OFFLINE once, when it is imported (its
`constants` module); everything here reads those constants, never the environment, so they agree.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from saetui.errors import ModelLoadError, SAELoadError, SaetuiError, first_line

#: The files of a model repo a start reads besides its weights: config, generation config, tokenizer
#: (fast and slow forms) and chat template. Custom code (`*.py` at the top) and `additional_chat_templates/`
#: come too. What transformers asks for, seen against a Hub stand-in (tests/hub_stand_in.py).
MODEL_FILES = frozenset({
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "vocab.json", "merges.txt",
    "vocab.txt", "chat_template.jinja", "chat_template.json", "processor_config.json", "preprocessor_config.json",
})
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
#: Weights, in the order transformers prefers them: (index, single file).
WEIGHTS = (("model.safetensors.index.json", "model.safetensors"), ("pytorch_model.bin.index.json", "pytorch_model.bin"))
#: Files that make a registry SAE complete, by its sae-lens loader (conversion_func; None is sae-lens's own format).
#: Releases of other loaders are complete when their folder has any file.
SAE_FILES = {None: ("cfg.json", "sae_weights.safetensors"), "sae_lens": ("cfg.json", "sae_weights.safetensors"),
             "gemma_2": ("params.npz",)}


class HubError(SaetuiError):
    """A download failed or cannot start; the message says what to do."""


class ModelHubError(HubError, ModelLoadError):
    """A model's files could not be fetched (or are not cached while offline)."""


class SAEHubError(HubError, SAELoadError):
    """A registry SAE's files could not be fetched (or are not cached while offline)."""


class DownloadCancelled(HubError):
    """The user stopped a download (the app's Ctrl+S); what finished is kept in the cache."""


def fail(target: Target, message: str) -> HubError:
    return (ModelHubError if target.kind == "model" else SAEHubError)(message)


# ---------------------------------------------------------------------- what to fetch
@dataclass(frozen=True)
class Target:
    """One model, or one registry SAE (a folder of a repo), as the user named it."""

    kind: str                     # "model" | "SAE"
    repo_id: str
    name: str                     # as given: `google/gemma-2-2b`, `RELEASE/SAE_ID`
    folder: str = ""              # SAE: its folder in the repo
    required: tuple[str, ...] = ()  # SAE: the files (in its folder) its loader reads; () = any
    revision: str = "main"

    @property
    def what(self) -> str:
        return f"model {self.name}" if self.kind == "model" else f"SAE {self.name}"


def model_target(repo_id: str, revision: str = "main") -> Target:
    """A Hub model id, checked for form (one-line error) before anything asks the Hub about it."""
    _check_repo_id(repo_id, "model")
    return Target("model", repo_id, repo_id, revision=revision)


def sae_target(release: str, sae_id: str) -> Target:
    """A sae-lens registry SAE: the repo and folder its release names (unknown names fail with suggestions)."""
    from saetui.sae.pretrained import check_registry_spec

    lookup = check_registry_spec(release, sae_id)
    required = SAE_FILES.get(lookup.conversion_func, ())
    folder = str(lookup.saes_map[sae_id]).strip("/")
    return Target("SAE", lookup.repo_id, f"{release}/{sae_id}", folder=folder, required=required)


def _check_repo_id(repo_id: str, what: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        error = ModelHubError if what == "model" else SAEHubError
        raise error(f"{repo_id!r} is neither a folder nor a Hub {what} id (org/name): {first_line(exc)}") from None


@dataclass
class Stored:
    """A target complete in the cache: where, which commit, how much; and what this run fetched of it."""

    target: Target
    path: Path        # the snapshot folder (an SAE: its folder inside the snapshot)
    commit: str
    files: int
    bytes: int
    fetched_files: int = 0
    fetched_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        t = self.target
        return {"kind": t.kind, "name": t.name, "repo": t.repo_id, "folder": t.folder or None, "revision": t.revision,
                "commit": self.commit, "path": str(self.path), "files": self.files, "bytes": self.bytes,
                "fetched_files": self.fetched_files, "fetched_bytes": self.fetched_bytes}


# ---------------------------------------------------------------------- the cache
def hf_constants() -> Any:
    from huggingface_hub import constants

    return constants


def cache_dir() -> Path:
    """huggingface_hub's cache folder (HF_HUB_CACHE, default HF_HOME/hub), as it was read at its import."""
    return Path(hf_constants().HF_HUB_CACHE)


def endpoint() -> str:
    return str(hf_constants().ENDPOINT).rstrip("/")


def offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: the cache alone is used."""
    return bool(hf_constants().is_offline_mode())


_OFFLINE_LOCK = threading.RLock()


@contextlib.contextmanager
def cache_only() -> Iterator[None]:
    """huggingface_hub's offline switch held while a library (sae-lens) reads files we made sure are cached:
    its hf_hub_download calls then answer from the cache without a request (hf raises OfflineModeIsEnabled
    before any I/O and falls back to the cached file). Process-wide while held, so held under a lock."""
    constants = hf_constants()
    with _OFFLINE_LOCK:
        before = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = before


def _repo_dir(repo_id: str) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return cache_dir() / repo_folder_name(repo_id=repo_id, repo_type="model")


def snapshot(target: Target) -> Path | None:
    """The cached snapshot folder of the target's revision (through refs/), or None."""
    repo = _repo_dir(target.repo_id)
    if re.fullmatch(r"[0-9a-f]{40}", target.revision):
        commit: str | None = target.revision
    else:
        try:
            commit = (repo / "refs" / target.revision).read_text().strip()
        except OSError:
            return None
    folder = repo / "snapshots" / str(commit)
    return folder if folder.is_dir() else None


def weight_files(names: set[str], read_index: Callable[[str], Any]) -> list[str] | None:
    """The weight files of a model (an index and the shards it names, or one file); None: none found."""
    for index, single in WEIGHTS:
        if index in names:
            try:
                shards = sorted(set(read_index(index)["weight_map"].values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                return None
            return [index, *shards]
        if single in names:
            return [single]
    return None


def _files_in(folder: Path) -> set[str]:
    """Every file under `folder`, as repo paths (`a/b.json`); symlinks to missing blobs do not count."""
    if not folder.is_dir():
        return set()
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _missing_in_cache(target: Target, snap: Path | None) -> list[str]:
    """What the target lacks in its cached snapshot ([] = complete): file names, or a word for a group."""
    if snap is None:
        return ["everything"]
    if target.kind == "SAE":
        here = _files_in(snap / target.folder)
        if not target.required:
            return [] if here else [f"{target.folder}/"]
        return [f"{target.folder}/{f}" for f in target.required if f not in here]
    names = {p.name for p in snap.iterdir() if p.is_file()}
    missing = [] if "config.json" in names else ["config.json"]
    weights = weight_files(names, lambda f: json.loads((snap / f).read_text()))
    if weights is None:
        missing.append("the weights")
    else:
        missing += [w for w in weights if not (snap / w).is_file()]
    if not any(t in names for t in TOKENIZER_FILES):
        missing.append("the tokenizer")
    return missing


def _folder_bytes(folder: Path) -> tuple[int, int]:
    """How many files under `folder`, and their bytes (the blobs the snapshot's links point to)."""
    sizes = [p.stat().st_size for p in folder.rglob("*") if p.is_file()]
    return len(sizes), sum(sizes)


def cached(target: Target) -> Stored | None:
    """The target as the cache has it, if complete; None otherwise. Reads the disk only."""
    snap = snapshot(target)
    if snap is None or _missing_in_cache(target, snap):
        return None
    path = snap / target.folder if target.folder else snap
    n, size = _folder_bytes(path)
    return Stored(target, path, snap.name, n, size)


def cache_note(target: Target) -> str:
    """What the cache has of a target, for error messages."""
    snap = snapshot(target)
    missing = _missing_in_cache(target, snap)
    if snap is None or missing == ["everything"]:
        note = f"nothing of it is in the HF cache ({cache_dir()})"
    elif not missing:
        note = f"it is complete in the HF cache ({snap})"
    else:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        note = f"the HF cache ({cache_dir()}) has part of it, not {shown}"
    others = cached_repos(exclude=target.repo_id)
    if others:
        note += "; cached there: " + ", ".join(others[:4]) + (" ..." if len(others) > 4 else "")
    return note


def cached_repos(exclude: str | None = None) -> list[str]:
    """The model repos the HF cache has a snapshot of (names only, by their folders)."""
    try:
        entries = sorted(os.listdir(cache_dir()))
    except OSError:
        return []
    out = []
    for entry in entries:
        if entry.startswith("models--") and (cache_dir() / entry / "snapshots").is_dir():
            repo = entry[len("models--"):].replace("--", "/")
            if repo != exclude:
                out.append(repo)
    return out
