"""Saved state: steering presets and the last session, as JSON under the platformdirs config folder.

Writes go through `saetui.files` (temporary file, fsync, os.replace), so a crash never leaves half a
file. Reading never raises on a bad file: it is checked field by field, what is valid is kept, and a
file with anything unusable is set aside as `<name>.bak-YYYYmmdd-HHMMSS` with a one-line notice.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from saetui.errors import InputError, SaetuiError
from saetui.files import set_aside, write_json_atomic
from saetui.paths import config_dir
from saetui.steering.spec import SteeringSpec

SESSION_FILE = "session.json"
_HISTORY_MAX = 50


def read_json_or_set_aside(path: Path) -> tuple[Any | None, str | None]:
    """(data, None), (None, None) when missing, or (None, notice) after setting a corrupt file aside."""
    try:
        if not path.is_file():
            return None, None
        raw = path.read_bytes()
    except OSError:
        return None, None
    try:
        return json.loads(raw.decode("utf-8")), None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        backup = set_aside(path, f"could not be read ({type(exc).__name__})")
        return None, f"{path.name} could not be read ({type(exc).__name__}); kept aside as {backup.name}, starting clean"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    try:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    except OverflowError:  # an int too large for a float
        return False


_STR = lambda v: isinstance(v, str)  # noqa: E731
_STR_OR_NONE = lambda v: v is None or isinstance(v, str)  # noqa: E731
_BOOL = lambda v: isinstance(v, bool)  # noqa: E731
_SPEC_FIELDS = {"coefficient": _is_number, "mode": _STR, "sae": _STR_OR_NONE, "scope": _STR, "unit": _STR, "enabled": _BOOL}
_VECTOR_FIELDS = {"vector": _STR, "coefficient": _is_number, "hook": _STR_OR_NONE, "scope": _STR, "enabled": _BOOL}


def spec_from_saved(data: Any) -> Any:
    """A SteeringSpec (or a VectorSpec, for a dict naming a `vector`) from saved JSON, checked strictly
    (feature 1.7 or enabled "no" is not a spec), or None."""
    if isinstance(data, dict) and "vector" in data:
        from saetui.steering.vectors import VectorSpec

        return _built(VectorSpec, data, _VECTOR_FIELDS, {})
    if not isinstance(data, dict) or not _is_int(data.get("feature")) or data["feature"] < 0:
        return None
    return _built(SteeringSpec, data, _SPEC_FIELDS, {"feature": data["feature"]})


def _built(cls: Any, data: dict, checks: dict[str, Any], kept: dict[str, Any]) -> Any:
    """`cls(**fields)` from the fields of `data` that `checks` knows, each of the right type; None otherwise."""
    for key, ok in checks.items():
        if key in data:
            if not ok(data[key]):
                return None
            kept[key] = data[key]
    try:
        return cls(**kept)
    except (SaetuiError, TypeError, ValueError, OverflowError):
        return None


def _check_session(data: Any) -> tuple[dict[str, Any], list[str]]:
    """The valid fields of a saved session, and the names of the ones dropped."""
    if not isinstance(data, dict):
        return {}, ["(not a JSON object)"]
    kept: dict[str, Any] = {}
    bad: list[str] = []

    def field(key: str, ok: bool) -> None:
        if key in data:
            (kept.__setitem__(key, data[key]) if ok else bad.append(key))

    field("model", data.get("model") is None or isinstance(data.get("model"), str))
    saes = data.get("saes")
    field("saes", saes is None or (isinstance(saes, list) and all(isinstance(s, str) for s in saes)))
    field("prompt", isinstance(data.get("prompt"), str))
    history = data.get("history")
    field("history", isinstance(history, list) and all(isinstance(p, str) for p in history))
    if "history" in kept:
        kept["history"] = kept["history"][-_HISTORY_MAX:]
    if "specs" in data:
        specs = data["specs"]
        good = [spec_from_saved(d) for d in specs] if isinstance(specs, list) else []
        kept["specs"] = [s.to_dict() for s in good if s is not None]
        if not isinstance(specs, list) or len(kept["specs"]) != len(specs):
            bad.append("specs")
    if "saes" in kept and "model" not in kept:
        kept.pop("saes")
    return kept, bad


def save_session(data: dict[str, Any]) -> None:
    """The last model, SAEs, prompt and specs."""
    write_json_atomic(config_dir() / SESSION_FILE, data)


def load_session() -> tuple[dict[str, Any] | None, str | None]:
    """(the valid part of the last session or None, a notice or None). Never raises."""
    path = config_dir(create=False) / SESSION_FILE
    data, note = read_json_or_set_aside(path)
    if note or not path.is_file():  # unreadable (set aside) or missing; a file holding `null` goes on below
        return None, note
    kept, bad = _check_session(data)
    if bad:
        backup = set_aside(path, f"had unusable fields ({', '.join(bad)})")
        note = (f"{SESSION_FILE}: unusable {', '.join(bad)} dropped; kept aside as {backup.name}"
                + ("" if kept else ", starting clean"))
    return kept or None, note


def _preset_path(name: str) -> Path:
    if not isinstance(name, str) or not re.fullmatch(r"[\w.-]{1,64}", name) or name.strip(".") == "":
        raise InputError(f"preset name {name!r}: use letters, digits, '.', '-' or '_' (at most 64)")
    return config_dir(create=False) / "presets" / f"{name}.json"


def save_preset(name: str, specs: list[SteeringSpec]) -> Path:
    path = _preset_path(name)
    config_dir()  # a one-line error naming the folder when it cannot be created
    write_json_atomic(path, {"specs": [s.to_dict() for s in specs]})
    return path


def load_preset_checked(name: str) -> tuple[list[SteeringSpec], str | None]:
    """(the valid specs of a preset, a notice when some were dropped and the file set aside).

    InputError when there is no such preset or nothing in it is usable."""
    path = _preset_path(name)
    if not path.is_file():
        raise InputError(f"no preset named {name!r}; saved: {', '.join(list_presets()) or 'none'}")
    data, note = read_json_or_set_aside(path)
    if note:
        raise InputError(note)
    raw = data.get("specs") if isinstance(data, dict) else None
    specs = [spec_from_saved(d) for d in raw] if isinstance(raw, list) else []
    good = [s for s in specs if s is not None]
    if isinstance(raw, list) and len(good) == len(raw):
        return good, None
    backup = set_aside(path, "had unusable specs")
    if not good and raw != []:
        raise InputError(f"preset {name!r} holds no usable steering specs; kept aside as {backup.name}")
    dropped = len(raw) - len(good) if isinstance(raw, list) else 0
    return good, f"preset {name!r}: {dropped} unusable spec(s) dropped; kept aside as {backup.name}"


def load_preset(name: str) -> list[SteeringSpec]:
    """The valid specs of a preset (see `load_preset_checked`; a notice is recorded in saetui.files)."""
    return load_preset_checked(name)[0]


def list_presets() -> list[str]:
    folder = config_dir(create=False) / "presets"
    try:
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
    except OSError:
        return []
