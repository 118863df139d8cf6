"""What a start needs from the Hub: which of a model and its SAEs are Hub downloads (the rest are local folders,
the bundled demo or its SAEs), and the report of a `saetui download` (Session.download)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


@dataclass
class DownloadReport:
    """What `Session.download` left where: `items` per model and SAE (Stored.to_dict() with "source": "hub", or
    {"kind", "name", "path", "source": "local"}); `cache` is the HF cache folder, `host` the Hub asked."""

    cache: str
    host: str
    items: list[dict[str, Any]]

    @property
    def bytes(self) -> int:
        return sum(i.get("bytes", 0) for i in self.items)

    @property
    def fetched_bytes(self) -> int:
        return sum(i.get("fetched_bytes", 0) for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        return {"cache": self.cache, "host": self.host, "bytes": self.bytes, "fetched_bytes": self.fetched_bytes,
                "items": self.items}


def local_source(kind: str, spec: str) -> str | None:
    """The folder a model or SAE spec names on this machine (or "bundled" for the demo's SAEs); None for the Hub."""
    from saetui import demo
    from saetui.models.model import hub_model_id
    from saetui.sae.manager import registry_spec

    if kind == "model":
        return None if hub_model_id(spec) is not None else spec
    if spec in {s.name for s in demo.SAES}:
        return "bundled"
    return None if registry_spec(spec) is not None else spec


def hub_targets(model: str | None, saes: Sequence[str] | None) -> list[Any]:
    """The Hub downloads a load of (model, saes) needs, in order: the model (a Hub id), then registry SAEs.
    Local folders, the demo and its SAEs need none. Bad specs fail here in one line, before any request."""
    from saetui import hub
    from saetui.sae.manager import registry_spec

    targets = []
    if model is not None and local_source("model", model) is None:
        targets.append(hub.model_target(model))
    for spec in saes or []:
        if local_source("SAE", spec) is None:
            release, sae_id = registry_spec(spec)  # type: ignore[misc]
            targets.append(hub.sae_target(release, sae_id))
    return targets


def download(model: str | None, saes: Sequence[str] | None, *, refresh: bool = False) -> DownloadReport:
    """Fetch what a load of (model, saes) reads into the HF cache (progress and cancelling: hub.reporting)."""
    from saetui import hub
    from saetui.errors import InputError

    if model is None and not saes:
        raise InputError("nothing to download: give a model (--model) and/or SAEs (--sae)")
    if model is not None and local_source("model", model) is not None and not (Path(model) / "config.json").is_file():
        # an empty folder or a file said 'nothing to download, offline from now on', and the load then failed
        raise InputError(f"{model} is not a model folder (no config.json in it): give a Hub model id or a folder "
                         "holding a model")
    targets = hub_targets(model, saes)
    stored = iter(hub.fetch(targets, refresh=refresh)) if targets else iter(())
    items: list[dict[str, Any]] = []
    for kind, spec in [("model", model)] * (model is not None) + [("SAE", s) for s in saes or []]:
        local = local_source(kind, spec)
        items.append(next(stored).to_dict() | {"source": "hub"} if local is None else
                     {"kind": kind, "name": spec, "path": local, "source": "local"})
    return DownloadReport(str(hub.cache_dir()), hub.endpoint(), items)
