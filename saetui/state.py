"""Saved state: steering presets and the last session, as JSON under the platformdirs config folder.

Every write goes to a temporary file first and is moved into place with `os.replace`, so a crash
never leaves half a file. A file that cannot be read is moved aside as `<name>.bak` and the caller
starts clean, with a message saying so.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from saetui.errors import InputError
from saetui.paths import config_dir
from saetui.steering.spec import SteeringSpec

SESSION_FILE = "session.json"


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json_or_set_aside(path: Path) -> tuple[Any | None, str | None]:
    """(data, None), (None, None) when missing, or (None, message) after moving a corrupt file to .bak."""
    if not path.is_file():
        return None, None
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        backup = path.with_name(path.name + ".bak")
        os.replace(path, backup)
        return None, f"{path.name} could not be read ({type(exc).__name__}); kept aside as {backup.name}, starting clean"


def save_session(data: dict[str, Any]) -> None:
    """The last model, SAEs, prompt and specs."""
    write_json_atomic(config_dir() / SESSION_FILE, data)


def load_session() -> tuple[dict[str, Any] | None, str | None]:
    data, note = read_json_or_set_aside(config_dir() / SESSION_FILE)
    if data is not None and not isinstance(data, dict):
        os.replace(config_dir() / SESSION_FILE, config_dir() / (SESSION_FILE + ".bak"))
        return None, f"{SESSION_FILE} is not a JSON object; kept aside as {SESSION_FILE}.bak, starting clean"
    return data, note


def _preset_path(name: str) -> Path:
    if not re.fullmatch(r"[\w.-]{1,64}", name):
        raise InputError(f"preset name {name!r}: use letters, digits, '.', '-' or '_' (at most 64)")
    return config_dir() / "presets" / f"{name}.json"


def save_preset(name: str, specs: list[SteeringSpec]) -> Path:
    path = _preset_path(name)
    write_json_atomic(path, {"specs": [s.to_dict() for s in specs]})
    return path


def load_preset(name: str) -> list[SteeringSpec]:
    path = _preset_path(name)
    if not path.is_file():
        raise InputError(f"no preset named {name!r}; saved: {', '.join(list_presets()) or 'none'}")
    data, note = read_json_or_set_aside(path)
    if note:
        raise InputError(note)
    if not isinstance(data, dict) or not isinstance(data.get("specs"), list):
        raise InputError(f"preset {name!r} holds no list of specs")
    return [SteeringSpec.from_dict(d) for d in data["specs"]]


def list_presets() -> list[str]:
    folder = config_dir() / "presets"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
