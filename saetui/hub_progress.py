"""Download progress: the `Progress` events a download reports, the stderr display of the CLI
(`StderrProgress`), and where a download in this thread reports and whether it was stopped (`reporting`,
`stop`). Ground floor: huggingface_hub is imported only when a bar draws or a download is stopped."""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, TextIO


@dataclass(frozen=True)
class Progress:
    """One moment of a download, for a display. `event`:

    plan       the files to fetch are known (n_files, all_total; `what` names every target)
    file       bytes of one file arrived (or it started: done 0)
    file_done  a file is complete
    done       every file is complete
    stopped    cancelled, interrupted or failed part way (all_done bytes are in; finished files are kept)
    """

    event: str
    what: str
    filename: str = ""
    file_no: int = 0
    n_files: int = 0
    done: int = 0
    total: int | None = None
    all_done: int = 0
    all_total: int = 0
    files_done: int = 0
    elapsed: float = 0.0          # seconds since the first file started
    file_elapsed: float = 0.0     # seconds since this file started
    host: str = ""
    cache: str = ""

    @property
    def rate(self) -> float | None:
        """Bytes per second over the whole download so far."""
        return self.all_done / self.elapsed if self.elapsed > 0.05 and self.all_done > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far."""
        rate = self.rate
        return None if rate is None else max(0.0, (self.all_total - self.all_done) / rate)


ProgressSink = Callable[[Progress], None]


def human_bytes(n: float | None) -> str:
    """`691.0 kB`, `5.0 GB`: decimal units, as the Hub shows file sizes."""
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - the loop returns


def human_time(seconds: float | None) -> str:
    """`0.4s`, `45s`, `3m05s`, `1h02m`."""
    if seconds is None:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class StderrProgress:
    """Progress for a terminal or a log: a line per file (size, time, rate) on stderr, and while a file
    arrives, on a terminal, huggingface_hub's own live bar (tqdm); elsewhere a line every `every` seconds.
    Nothing goes to stdout, so `--json` output stays clean."""

    def __init__(self, stream: TextIO | None = None, every: float = 30.0) -> None:
        self.stream = stream
        self.every = every
        self._last_line = 0.0

    @property
    def live(self) -> bool:
        """Whether hf's tqdm may draw its live bar: only on a terminal."""
        stream = self.stream or sys.stderr
        try:
            return bool(stream.isatty())
        except (AttributeError, ValueError):
            return False

    def _write(self, text: str) -> None:
        from huggingface_hub.utils import tqdm as hf_tqdm

        hf_tqdm.write(f"saetui: {text}", file=self.stream or sys.stderr)  # above a live bar, not through it

    def __call__(self, p: Progress) -> None:
        if p.event == "plan":
            self._last_line = time.monotonic()
            self._write(f"fetching {p.n_files} file{'s' * (p.n_files != 1)} ({human_bytes(p.all_total)}) for {p.what} "
                        f"from {p.host} into {p.cache}")
        elif p.event == "file_done":
            rate = p.done / p.file_elapsed if p.file_elapsed >= 0.5 else None  # a small file's time is the round trip
            speed = f" ({human_bytes(rate)}/s)" if rate else ""
            self._write(f"{p.file_no}/{p.n_files} {p.what}: {p.filename} {human_bytes(p.done)} in "
                        f"{human_time(p.file_elapsed)}{speed}")
        elif p.event == "file" and not self.live and time.monotonic() - self._last_line >= self.every:
            self._last_line = time.monotonic()
            self._write(f"... {p.filename} {human_bytes(p.done)} / {human_bytes(p.total)}, "
                        f"{human_bytes(p.rate)}/s, {human_time(p.eta)} left")
        elif p.event == "done":
            self._write(f"fetched {p.n_files} file{'s' * (p.n_files != 1)} ({human_bytes(p.all_done)}) in "
                        f"{human_time(p.elapsed)}" + (f" ({human_bytes(p.rate)}/s)" if p.rate else ""))
        elif p.event == "stopped":
            self._write(f"download stopped after {p.files_done} of {p.n_files} files; the finished ones are kept in "
                        f"{p.cache}, and the same command fetches the rest")


@dataclass
class Reporting:
    progress: ProgressSink | None
    cancel: threading.Event | None


_REPORTING: contextvars.ContextVar[Reporting | None] = contextvars.ContextVar("saetui_hub_reporting", default=None)


@contextlib.contextmanager
def reporting(progress: ProgressSink | None = None, cancel: threading.Event | None = None) -> Iterator[None]:
    """Downloads started inside (in this thread) report to `progress` and stop when `cancel` is set.
    Without it they report with `StderrProgress`."""
    token = _REPORTING.set(Reporting(progress, cancel))
    try:
        yield
    finally:
        _REPORTING.reset(token)


def stop(cancel: threading.Event) -> None:
    """Stop the downloads that watch `cancel` now: set it, and close huggingface_hub's shared HTTP client
    (`close_session`), so a read waiting for the next chunk (hf reads 10 MB at a time) ends at once instead of
    at the next chunk; hf makes a new client for its next request. The file in progress is dropped, whole.
    A Xet transfer is aborted through huggingface_hub's own abort (what it does on Ctrl+C), where it has one."""
    cancel.set()
    from huggingface_hub import close_session

    close_session()
    try:  # a Xet download (the Hub's large files) runs in hf_xet's threads: abort it the way hf's Ctrl+C does
        from huggingface_hub.utils._xet import abort_xet_session
    except ImportError:
        return
    abort_xet_session()


def current_reporting() -> Reporting:
    current = _REPORTING.get()
    if current is None or current.progress is None:
        return Reporting(StderrProgress(), current.cancel if current else None)
    return current
