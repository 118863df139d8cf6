"""Saved state: steering presets and the last session, as JSON under the platformdirs config folder.

Writes go through `saetui.files` (temporary file, fsync, os.replace), so a crash never leaves half a
file. Reading never raises on a bad file: it is checked field by field, what is valid is kept, and a
file with anything unusable is set aside as `<name>.bak-YYYYmmdd-HHMMSS` with a one-line notice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saetui.errors import InputError, SaetuiError
from saetui.files import set_aside, write_json_atomic
from saetui.paths import config_dir

if TYPE_CHECKING:  # the spec model and the settings are imported when a saved spec or history is read (the app's
    # first frame reads the saved session: a first start has none)
    from saetui.steering.spec import Spec

SESSION_FILE = "session.json"


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
        return None, f"{path.name} could not be read ({type(exc).__name__}); kept aside as {backup.name}"


def spec_from_saved(data: Any) -> Any:
    """A spec (SteeringSpec or VectorSpec) from saved JSON, read strictly (saetui.steering.spec.spec_from_dict),
    or None when it is not one."""
    from saetui.steering.spec import spec_from_dict

    try:
        return spec_from_dict(data)
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
        from saetui.settings import AppSettings

        kept["history"] = kept["history"][-AppSettings.history:]
    field("shown_sae", isinstance(data.get("shown_sae"), str))
    boxes = data.get("boxes")
    field("boxes", isinstance(boxes, dict) and all(isinstance(k, str) and isinstance(v, str) and len(v) < 200
                                                   for k, v in boxes.items()))
    chat = data.get("chat")
    field("chat", chat is None or (isinstance(chat, list) and all(
        isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
        and set(m) == {"role", "content"} for m in chat)))
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
    """The last model, SAEs, prompt, specs, prompt history, the SAE shown, the chat (None: plain text) and what
    was typed in the steer pane's boxes (max tokens, temperature, seed, sweep)."""
    write_json_atomic(config_dir() / SESSION_FILE, data)


def load_session() -> tuple[dict[str, Any] | None, str | None]:
    """(the valid part of the last session or None, a notice or None). Never raises."""
    path = config_dir(create=False) / SESSION_FILE
    data, note = read_json_or_set_aside(path)
    if note or not path.is_file():  # unreadable (set aside) or missing; a file holding `null` goes on below
        return None, note and f"{note}, starting clean"
    kept, bad = _check_session(data)
    if bad:
        backup = set_aside(path, f"had unusable fields ({', '.join(bad)})")
        note = (f"{SESSION_FILE}: unusable {', '.join(bad)} dropped; kept aside as {backup.name}"
                + ("" if kept else ", starting clean"))
    return kept or None, note


def _preset_path(name: str) -> Path:
    from saetui.inputs import check_name

    return config_dir(create=False) / "presets" / f"{check_name(name, 'preset')}.json"


def save_preset(name: str, specs: list[Spec]) -> Path:
    path = _preset_path(name)
    config_dir()  # a one-line error naming the folder when it cannot be created
    write_json_atomic(path, {"specs": [s.to_dict() for s in specs]})
    return path


def load_preset_checked(name: str) -> tuple[list[Spec], str | None]:
    """(the valid specs of a preset, a notice when some were dropped and the file set aside).

    InputError when there is no such preset or nothing in it is usable."""
    path = _preset_path(name)
    if not path.is_file():
        raise InputError(f"no preset named {name!r}; saved: {', '.join(list_presets()) or 'none'}")
    data, note = read_json_or_set_aside(path)
    if note:  # the specs in use are not touched
        raise InputError(f"preset {name!r} not loaded: {note}")
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


def load_preset(name: str) -> list[Spec]:
    """The valid specs of a preset (see `load_preset_checked`; a notice is recorded in saetui.files)."""
    return load_preset_checked(name)[0]


def list_presets() -> list[str]:
    folder = config_dir(create=False) / "presets"
    try:
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
    except OSError:
        return []
