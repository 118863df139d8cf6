"""Where saetui keeps its files (platformdirs): config, cache, logs. Each function creates its folder."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "saetui"


def _ensure(path: str) -> Path:
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    return p


def config_dir() -> Path:
    """Presets, last session, labels."""
    return _ensure(platformdirs.user_config_dir(APP_NAME))


def cache_dir() -> Path:
    """Activation caches and feature indexes (safe to delete)."""
    return _ensure(platformdirs.user_cache_dir(APP_NAME))


def log_dir() -> Path:
    return _ensure(platformdirs.user_log_dir(APP_NAME))
