"""Where saetui keeps its files (platformdirs): config, cache, logs.

Each function returns its folder, creating it unless `create=False`. A folder that cannot be created
(XDG_CONFIG_HOME is a file, XDG_CACHE_HOME under /proc...) is a one-line `FolderError` (an InputError
and an OSError) naming it; readers pass `create=False` and then find nothing there, so commands that
do not write keep working.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

from saetui.files import ensure_dir

APP_NAME = "saetui"


def _folder(path: str, what: str, create: bool) -> Path:
    return ensure_dir(path, what) if create else Path(path)


def config_dir(create: bool = True) -> Path:
    """Presets, last session, labels."""
    return _folder(platformdirs.user_config_dir(APP_NAME), "config folder", create)


def cache_dir(create: bool = True) -> Path:
    """Activation caches and feature indexes (safe to delete)."""
    return _folder(platformdirs.user_cache_dir(APP_NAME), "cache folder", create)


def log_dir(create: bool = True) -> Path:
    return _folder(platformdirs.user_log_dir(APP_NAME), "log folder", create)
