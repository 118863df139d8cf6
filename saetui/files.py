"""Files, on the ground floor: every write saetui makes goes through here.

    atomic_write(path, data)      a temporary file in the same folder, fsync, os.replace: a crash never
                                  leaves half a file, and a failed write leaves no temporary behind
    write_json_atomic(path, obj)  the same for JSON
    atomic_folder(path)           build a whole folder under a temporary sibling, then swap it in
    set_aside(path, reason)       move a file that cannot be used to NAME.bak-YYYYmmdd-HHMMSS[-n] (never
                                  over an earlier copy) and record a one-line notice (see `take_notices`)
    read_text / decode_text       UTF-8 text of a user's file (corpus, labels); invalid UTF-8 is refused
                                  with an InputError naming the file and the line, never replaced silently
    fingerprint(texts)            the one hash of a corpus (caches and indexes both use it)
    ensure_dir(path)              create a folder or say, in one line, that it cannot be written
    check_creatable(path)         the same check before long work, creating nothing

Nothing here imports torch or the rest of saetui except `saetui.errors`.
"""

from __future__ import annotations

import math

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from saetui.errors import InputError

log = logging.getLogger("saetui")

_NOTICES: list[str] = []


class FolderError(InputError, OSError):
    """A folder saetui must write to cannot be created or written (an InputError, and an OSError for
    callers that already catch failed writes)."""


def notice(message: str) -> str:
    """Record a one-line notice (a file set aside, ...) for the CLI or the app to show; also logged."""
    message = " ".join(message.split())
    _NOTICES.append(message)
    del _NOTICES[:-100]  # nobody may be collecting them: keep the latest only
    log.warning("saetui: warning: %s", message)
    return message


def take_notices() -> list[str]:
    """The notices recorded since the last call, oldest first (and forget them)."""
    out = list(_NOTICES)
    _NOTICES.clear()
    return out


def ensure_dir(path: str | Path, what: str = "folder") -> Path:
    """`path` as a folder that exists (created with its parents), or a one-line FolderError naming it."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FolderError(f"cannot create the {what} {p}: {_in_the_way(p) or exc.strerror or type(exc).__name__}") from exc
    return p


def _in_the_way(p: Path) -> str | None:
    """What keeps folder `p` from being created (or written in), found without creating anything; None: nothing."""
    existing = next((a for a in (p, *p.parents) if a.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if existing is not None and not can_write_in(existing):
        return f"cannot write in {existing}"
    return None


def check_creatable(folder: str | Path, what: str = "folder") -> Path:
    """`folder` exists and can be written in, or could be created: checked before long work without creating it,
    so work that then fails on its input leaves no empty folder behind; else a FolderError."""
    p = Path(folder)
    why = _in_the_way(p)
    if why is not None:
        raise FolderError(f"cannot {'write to' if p.is_dir() else 'create'} the {what} {p}: {why}")
    return p


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | Path, data: bytes | str | Callable[[Any], Any]) -> Path:
    """Write `data` (bytes, str as UTF-8, or a function given the open binary file) to `path` atomically.

    The temporary file lives in the same folder (so os.replace is a rename) and is removed on any failure. Through
    a symbolic link, the file it points to is replaced and the link stays; a device, pipe or socket at `path` is
    refused (InputError), never replaced by a file. Returns `path` as given."""
    given = Path(path)
    path = Path(os.path.realpath(given))
    if path.exists() and not path.is_file():
        raise InputError(f"{given} is not a regular file (a device, pipe or socket): not replaced; give a file name")
    ensure_dir(path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # a read-only folder or disk
        raise _write_error(given, exc) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(OSError):  # mkstemp makes 0600 files; give saved files the usual mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, InputError):  # a full disk: one line, the old file kept
            raise _write_error(given, exc) from exc
        raise
    _fsync_dir(path.parent)
    return given


def _write_error(path: Path, exc: OSError) -> FolderError:
    """A failed write as the one line the CLI and the app show (`cannot write x.json: No space left on device`)."""
    return FolderError(f"cannot write {path}: {exc.strerror or type(exc).__name__} (nothing of it was kept)")


def write_json_atomic(path: str | Path, data: Any) -> Path:
    return atomic_write(path, json.dumps(data, indent=1, ensure_ascii=False))


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """`with atomic_folder(out) as tmp:` fill `tmp`; on success it becomes `out` (an old `out` is replaced
    only after the new one is complete); on failure `tmp` is removed and `out` is untouched."""
    path = Path(path)
    ensure_dir(path.parent)
    try:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}-{time.time_ns()}")
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if old is not None:
            remove_path(old)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, InputError):  # a full disk while it was filled
            raise _write_error(path, exc) from exc
        raise


def remove_path(path: Path) -> None:
    """Delete a file, a link or a whole folder, whichever `path` is (an old copy being replaced); errors ignored."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def stamped_path(make: Callable[[str], Path]) -> Path:
    """`make(stamp)` with stamp YYYYmmdd-HHMMSS, or YYYYmmdd-HHMMSS-2, -3... when that path exists already
    (two saves in one second never overwrite each other)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = make(stamp)
    n = 2
    while candidate.exists() or candidate.is_symlink():
        candidate = make(f"{stamp}-{n}")
        n += 1
    return candidate


def backup_name(path: Path) -> Path:
    """NAME.bak-YYYYmmdd-HHMMSS, or with -2, -3... when that exists already."""
    return stamped_path(lambda stamp: path.with_name(f"{path.name}.bak-{stamp}"))


def set_aside(path: str | Path, reason: str, *, quiet: bool = False) -> Path:
    """Move an unusable file to a timestamped backup beside it (never over an earlier one) and record a
    notice naming both (quiet: no notice, for a caller whose own error names the backup). Returns the
    backup's path (or `path` itself if it could not be moved)."""
    path = Path(path)
    backup = backup_name(path)
    try:
        os.link(path, backup)  # fails instead of overwriting a backup made at the same moment
        os.unlink(path)
    except OSError:
        try:
            os.replace(path, backup)
        except OSError as exc:
            if not quiet:
                notice(f"{path} {reason}; it could not be set aside ({exc.strerror or type(exc).__name__}), ignoring it")
            return path
    if not quiet:
        notice(f"{path} {reason}; kept aside as {backup.name}")
    return backup


def can_write_in(folder: str | Path) -> bool:
    """Whether a file can be created in `folder`: tried, not guessed from permission bits (root, /proc, read-only mounts)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".saetui-probe.", suffix=".tmp")
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def check_writable(folder: str | Path, what: str = "folder") -> Path:
    """Create `folder` and prove a file can be written there, before any long work; else a FolderError."""
    folder = ensure_dir(folder, what)
    if not can_write_in(folder):
        raise FolderError(f"cannot write to the {what} {folder}")
    return folder


def remove_temporaries(folder: str | Path) -> None:
    """Delete the temporaries a killed writer left in `folder` (`.NAME.*.tmp`, and old-style `NAME.tmp`)."""
    with contextlib.suppress(OSError):
        for p in Path(folder).iterdir():
            if p.name.endswith(".tmp") and p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()


def decode_text(raw: bytes, path: Path | str) -> str:
    """UTF-8 text of a user's file (`path` names it in the error): invalid bytes are refused with the line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x}); "
                         "save the file as UTF-8") from exc


def read_text(path: str | Path, what: str = "file") -> str:
    """A user's text file as UTF-8 (a BOM is dropped); a missing file or invalid UTF-8 is a one-line InputError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"no {what} at {path}") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path} is a folder, not a {what}") from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from exc
    text = decode_text(raw, path)
    return text[1:] if text.startswith("\ufeff") else text


def fingerprint(texts: Iterable[str]) -> str:
    """SHA-256 of a corpus: each text as UTF-8 followed by a NUL byte."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def json_ready(obj: Any) -> Any:
    """`obj` with tuples as lists and NaN/inf as None, as JSON wants it (results' `to_dict`)."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
