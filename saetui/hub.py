"""Downloads from the Hugging Face Hub: cache first, progress for every file, one-line errors that say what to do.

Every model and registry SAE a start needs is resolved here before anything heavy loads (`fetch`):

- What is complete in the HF cache is used as it is, without one request (no HEAD, no retries): a cached
  start works with the Hub unreachable, and with HF_HUB_OFFLINE=1. A model is complete when its snapshot
  has config.json, a tokenizer and every weight file its index names; an SAE when its folder has the files
  its sae-lens loader reads. Downloads fetch the weights last, so an interrupted one never looks complete.
- What is missing is fetched: first one metadata request per repo (its files and their sizes, through
  `HfApi.model_info`) and a HEAD of one file (is it gated?) for every repo, then a free-disk check, and only
  then the bytes, each file through huggingface_hub's `hf_hub_download` with its own progress hook: the
  `tqdm_class` it takes, here a subclass of huggingface_hub's tqdm that also reports to a `Progress` sink
  (lines on stderr in the CLI, the loading panel in the app) and lets a download be cancelled.
- `refresh=True` asks the Hub for a newer revision even when the cache is complete.

Models then load from the snapshot folder (transformers never goes online); registry SAEs load through
sae-lens under `cache_only()`, huggingface_hub's own offline switch, so its hf_hub_download calls resolve
from the cache we filled. Failures become one line (`HubError`) naming the repo and what to do: gated or
private repos, unknown ids, an unreachable Hub, a full disk, an interrupted download.

huggingface_hub reads HF_ENDPOINT, HF_HOME/HF_HUB_CACHE and HF_HUB_OFFLINE once, when it is imported (its
`constants` module); everything here reads those constants, never the environment, so they agree.

The pieces: saetui.hub_cache (targets, errors, what the cache holds) and saetui.hub_progress (progress events,
the stderr display, reporting and stopping); this module plans and runs the downloads and explains their
failures. The public names of all three are importable from here.
"""

from __future__ import annotations

import errno
import json
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from saetui.errors import SaetuiError, first_line
from saetui.hub_cache import (MODEL_FILES, SAE_FILES, TOKENIZER_FILES, WEIGHTS, DownloadCancelled, HubError,  # noqa: F401
                              ModelHubError, SAEHubError, Stored, Target, cache_dir, cache_note, cache_only, cached,
                              cached_repos, endpoint, fail, hf_constants, model_target, offline, sae_target, snapshot,
                              weight_files)
from saetui.hub_progress import (Progress, ProgressSink, Reporting, StderrProgress, current_reporting,  # noqa: F401
                                 human_bytes, human_time, reporting, stop)

#: Seconds a metadata request (a repo's file list, one HEAD) waits for the Hub: a hung Hub fails in under 10 s
#: (huggingface_hub itself may first wait 3 s for its agent-harness registry, once a day).
HUB_TIMEOUT = 4.0


# ---------------------------------------------------------------------- fetching
@dataclass
class _Plan:
    target: Target
    commit: str
    sizes: dict[str, int | None]
    files: list[str]                   # what the target needs
    missing: list[str] = field(default_factory=list)  # what to fetch, smallest first (weights last)
    early: list[str] = field(default_factory=list)    # fetched while planning (a weight index)


class _Run:
    """One `fetch`: its counters, its sink, its cancel event; the bars report here."""

    def __init__(self, reporting: Reporting, plans: list[_Plan]) -> None:
        self.sink = reporting.progress
        self.cancel = reporting.cancel
        self.live = bool(getattr(self.sink, "live", False))
        if self.live and not hf_constants().HF_HUB_DISABLE_PROGRESS_BARS:
            from huggingface_hub.utils import enable_progress_bars

            enable_progress_bars("saetui.download")  # our bars' group; transformers turned all of hf's off
        self.plans = plans
        self.n_files = sum(len(p.missing) for p in plans)
        self.all_total = sum(p.sizes.get(f) or 0 for p in plans for f in p.missing)
        self.all_done = 0
        self.files_done = 0
        self.file_no = 0
        self.started: float | None = None
        self.what = " and ".join(p.target.what for p in plans)
        # the file now arriving
        self.current: tuple[_Plan, str] | None = None
        self.file_done = 0
        self.file_started = 0.0
        self.counted_bar: object | None = None
        self.thread = threading.get_ident()  # the cancel check raises only here, never in a library's own thread

    def emit(self, event: str, **kw: Any) -> None:
        if self.sink is None:
            return
        now = time.monotonic()
        plan, name = self.current if self.current else (None, "")
        base = dict(what=plan.target.what if plan else self.what, filename=name, file_no=self.file_no,
                    n_files=self.n_files, done=self.file_done, total=plan.sizes.get(name) if plan else None,
                    all_done=self.all_done, all_total=self.all_total, files_done=self.files_done,
                    elapsed=now - self.started if self.started else 0.0,
                    file_elapsed=now - self.file_started if self.current else 0.0,
                    host=endpoint(), cache=str(cache_dir()))
        base.update(kw)
        self.sink(Progress(event, **base))

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DownloadCancelled(f"download of {self.what} cancelled; the {self.files_done} finished "
                                    f"file(s) are kept in the cache and the next load fetches the rest")

    def start_file(self, plan: _Plan, name: str) -> None:
        self.check_cancel()
        self.current, self.file_done, self.file_no = (plan, name), 0, self.file_no + 1
        self.file_started = time.monotonic()
        self.started = self.started or self.file_started
        self.counted_bar = None
        self.emit("file")

    def advance(self, bar: object, n: float) -> None:
        if self.counted_bar is None:
            self.counted_bar = bar
        if bar is self.counted_bar:  # one bar counts per file (http_get reuses its bar across its retries)
            self.file_done += int(n)
            self.all_done += int(n)
            self.emit("file")
        if threading.get_ident() == self.thread:  # hf's HTTP reads run here; Xet may report from its own threads
            self.check_cancel()

    def end_file(self) -> None:
        plan, name = self.current  # type: ignore[misc]
        size = plan.sizes.get(name)
        if size is not None and self.file_done != size:  # a cached blob (no bytes came) or a resumed count
            self.all_done += size - self.file_done
            self.file_done = size
        self.files_done += 1
        self.emit("file_done")
        self.current = None


def _bar_class(run: _Run) -> type:
    """huggingface_hub's tqdm, subclassed: it still draws hf's live bar where the sink allows it (a terminal),
    and every update also goes to the run (bytes, rate, ETA for the sink; the cancel check)."""
    from huggingface_hub.utils import tqdm as hf_tqdm

    class DownloadBar(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            plan, name = run.current or (None, "")
            kwargs["name"] = "saetui.download"  # our own bar group: hf's groups stay off (quiet_hf_output)
            kwargs["desc"] = name.rsplit("/", 1)[-1] or kwargs.get("desc")
            kwargs["leave"] = False
            if not run.live:
                kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            run.advance(self, n or 0)
            return super().update(n)

        # hf's Xet reporter routes its network-bytes count here when the class has these (one bar per file)
        def update_transfer(self, n: float | None = 1) -> None:
            pass

        def set_transfer_postfix_str(self, postfix: str, refresh: bool = False) -> None:
            pass

    return DownloadBar


def fetch(targets: Sequence[Target], *, refresh: bool = False) -> list[Stored]:
    """Make every target complete in the HF cache and say where: cached ones without a request (unless
    refresh), the rest from the Hub with progress. Every repo is asked about (files, sizes, access) before any
    bytes come, so a gated SAE fails before a 5 GB model downloads. One-line HubError on failure."""
    reporting = current_reporting()
    out: dict[Target, Stored | None] = {t: (None if refresh else cached(t)) for t in targets}
    todo = [t for t in dict.fromkeys(targets) if out[t] is None]
    if not todo:
        return [out[t] for t in targets]  # type: ignore[misc]
    if offline():
        t = todo[0]
        raise fail(t, f"HF_HUB_OFFLINE is set and {t.what} is not complete in the cache: {cache_note(t)}. Unset "
                       f"HF_HUB_OFFLINE to download it, or fetch it where there is network (saetui download "
                       f"{_download_args(todo)}) and bring that HF cache along")
    plans = [_plan(t) for t in todo]
    run = _Run(reporting, [p for p in plans if p.missing])
    if run.plans:
        _check_disk(run)
        run.emit("plan")
        try:
            for plan in run.plans:
                for name in plan.missing:
                    _download(run, plan, name)
        except BaseException:
            run.emit("stopped")
            raise
        run.emit("done", filename="")
    for plan in plans:
        snap = snapshot(plan.target)
        if snap is None or snap.name != plan.commit:
            _set_ref(plan)
        stored = cached(plan.target)
        if stored is None:
            raise fail(plan.target, f"{plan.target.what} is still incomplete after the download (its repo {plan.target.repo_id} "
                           f"may have changed meanwhile): run the same command again")
        fetched = plan.early + plan.missing
        stored.fetched_files = len(fetched)
        stored.fetched_bytes = sum(plan.sizes.get(f) or 0 for f in fetched)
        out[plan.target] = stored
    return [out[t] for t in targets]  # type: ignore[misc]


def _download_args(targets: Sequence[Target]) -> str:
    return " ".join(f"--{'model' if t.kind == 'model' else 'sae'} {t.name}" for t in targets)


def _plan(target: Target) -> _Plan:
    """Ask the Hub what the target's repo has (one request, HUB_TIMEOUT) and which of it the cache lacks;
    then HEAD the first missing file, so gated and private repos fail here, before any bytes. A sharded
    model's weight index (a few kB) is fetched here: it names the shards, whose sizes the disk check needs."""
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url

    try:
        info = HfApi().model_info(target.repo_id, revision=target.revision, files_metadata=True, timeout=HUB_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - mapped to one line, or re-raised as it is
        raise explain(exc, target) from exc
    sizes: dict[str, int | None] = {s.rfilename: s.size for s in info.siblings or []}
    plan = _Plan(target, str(info.sha), sizes, [])
    if target.kind == "model" and "config.json" not in sizes:
        raise fail(target, f"{target.what}: the repo has no config.json, so it is not a transformers model")
    plan.files = _needed(plan)
    unread = [f for f in plan.files if f.endswith(".index.json") and not _is_cached(plan, f)]
    try:
        if unread:
            get_hf_file_metadata(hf_hub_url(target.repo_id, unread[0], revision=plan.commit), timeout=HUB_TIMEOUT)
        for index in unread:
            hf_hub_download(target.repo_id, index, revision=target.revision)
            plan.early.append(index)
    except Exception as exc:  # noqa: BLE001
        raise explain(exc, target) from exc
    if unread:
        plan.files = _needed(plan)
    if not any(_is_weight(f) for f in plan.files):
        if target.kind == "SAE":
            raise fail(target, f"{target.what}: sae-lens's registry puts it in folder {target.folder!r} of {target.repo_id}, "
                           f"which has no weights there (is sae-lens older or newer than the repo?)")
        raise fail(target, f"{target.what}: the repo has no safetensors or PyTorch weights that transformers can load")
    plan.missing = sorted((f for f in plan.files if not _is_cached(plan, f)),
                          key=lambda f: (_is_weight(f), sizes.get(f) or 0, f))  # weights last: see `cached`
    if plan.missing and not unread:
        try:
            get_hf_file_metadata(hf_hub_url(target.repo_id, plan.missing[0], revision=plan.commit), timeout=HUB_TIMEOUT)
        except Exception as exc:  # noqa: BLE001
            raise explain(exc, target) from exc
    return plan


def _is_cached(plan: _Plan, name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(plan.target.repo_id, name, revision=plan.commit), str)


def _is_weight(name: str) -> bool:
    return name.endswith((".safetensors", ".bin", ".npz", ".pt", ".pth"))


def _needed(plan: _Plan) -> list[str]:
    """The files of the repo listing the target needs (a model's shards once its weight index is cached)."""
    from huggingface_hub import try_to_load_from_cache

    t, names = plan.target, set(plan.sizes)
    if t.kind == "SAE":
        return sorted(n for n in names if n.startswith(t.folder + "/"))

    def read_index(name: str) -> Any:
        path = try_to_load_from_cache(t.repo_id, name, revision=plan.commit)
        if not isinstance(path, str):
            raise OSError(f"{name} is not cached yet")
        return json.loads(Path(path).read_text())

    small = sorted(n for n in names if n in MODEL_FILES or n.startswith("additional_chat_templates/")
                   or (n.endswith(".py") and "/" not in n))
    weights = weight_files(names, read_index)
    if weights is None:  # an index not read yet: it alone, for now
        weights = [i for i, _ in WEIGHTS if i in names][:1]
    return small + weights


def _download(run: _Run, plan: _Plan, name: str) -> None:
    """One file through hf_hub_download (HEAD, then GET with resume on a cut connection), reported to the run."""
    from huggingface_hub import hf_hub_download

    run.start_file(plan, name)
    try:
        hf_hub_download(plan.target.repo_id, name, revision=plan.target.revision, tqdm_class=_bar_class(run))
    except DownloadCancelled:
        raise
    except Exception as exc:  # noqa: BLE001
        run.check_cancel()  # stop() closed the connection under the read: that is the cancel, not a network error
        raise explain(exc, plan.target, run=run, filename=name) from exc
    run.end_file()


def _set_ref(plan: _Plan) -> None:
    """Point the revision (refs/main) at the commit whose files are now all cached: hf_hub_download of a file
    that is there writes the ref after its HEAD, which is huggingface_hub's own way to record it."""
    from huggingface_hub import hf_hub_download

    if plan.files:
        try:
            hf_hub_download(plan.target.repo_id, plan.files[0], revision=plan.target.revision)
        except Exception as exc:  # noqa: BLE001
            raise explain(exc, plan.target) from exc


def _free_bytes(folder: Path) -> int:
    """Free bytes on the disk that holds `folder` (or its nearest existing parent)."""
    for path in (folder, *folder.parents):
        try:
            return shutil.disk_usage(path).free
        except OSError:
            continue
    return sys.maxsize


def _check_disk(run: _Run) -> None:
    """Refuse before the first byte when the files cannot fit (hf only warns, then fails part way)."""
    need = run.all_total
    free = _free_bytes(cache_dir())
    if need > free:
        raise fail(run.plans[0].target, _disk_full(run.what, need, free, full=False))


def _disk_full(what: str, need: int | None, free: int, full: bool = True) -> str:
    needed = f"{human_bytes(need)} needed, " if need else ""
    state = "is full" if full else "has too little room"
    return (f"the disk holding the HF cache ({cache_dir()}) {state} for {what}: {needed}{human_bytes(free)} free; "
            f"free some space or point HF_HOME (or HF_HUB_CACHE) at a larger disk")


# ---------------------------------------------------------------------- errors
_NETWORK_ERRORS = {"ConnectError", "ConnectTimeout", "TimeoutException", "NetworkError", "ProxyError", "ReadTimeout",
                   "ReadError", "WriteError", "WriteTimeout", "PoolTimeout", "RemoteProtocolError", "TransportError",
                   "ConnectionError", "TimeoutError"}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]


def _network_error(exc: BaseException) -> BaseException | None:
    """The connection-level error in the chain (httpx's or httpx2's, which hf uses by version), if any."""
    for e in _chain(exc):
        if any(c.__name__ in _NETWORK_ERRORS for c in type(e).__mro__) or isinstance(e, (ConnectionError, TimeoutError)):
            return e
    return None


def _reason(exc: BaseException) -> str:
    text = first_line(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return "timed out"
    return text


def explain(exc: BaseException, target: Target, *, run: _Run | None = None, filename: str | None = None) -> BaseException:
    """A huggingface_hub (or disk, or network) failure as one line that says what to do. Returns `exc` itself
    when it is already a SaetuiError or something that is not the user's to fix (a bug keeps its traceback)."""
    from huggingface_hub import get_token
    from huggingface_hub.errors import (FileMetadataError, GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        OfflineModeIsEnabled, RemoteEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    if isinstance(exc, SaetuiError):
        return exc
    what, repo, host = target.what, target.repo_id, endpoint()
    page = f"{host}/{repo}"
    login = "HF_TOKEN=hf_... (a read token from " + f"{host}/settings/tokens) or `hf auth login`"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, GatedRepoError):
        if status == 403 or get_token() is not None:
            return fail(target, f"{what}: your token cannot read the gated repo {repo}: accept its licence at {page} "
                            f"(approval may take a while) and check the token's access ({host}/settings/tokens)")
        return fail(target, f"{what}: {repo} is gated: accept its licence at {page}, then log in: {login}")
    if isinstance(exc, RevisionNotFoundError):
        return fail(target, f"{what}: {repo} has no revision {target.revision!r} on {host}")
    if isinstance(exc, RepositoryNotFoundError):
        where = f" (sae-lens's registry puts it in {repo})" if target.kind == "SAE" else ""
        token = "your token cannot see it; " if get_token() is not None else ""
        return fail(target, f"{what}: no repo {repo!r} on {host}{where}: ids are case-sensitive, check the spelling; "
                        f"if it is private, {token}log in: {login}")
    if isinstance(exc, RemoteEntryNotFoundError):
        return fail(target, f"{what}: {repo} has no file {filename or '?'} any more (it changed on the Hub); run again")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        need = run.all_total - run.all_done if run is not None else None
        return fail(target, _disk_full(what, need, _free_bytes(cache_dir())))
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return fail(target, f"cannot write in the HF cache ({cache_dir()}) for {what}: {exc.strerror}; point HF_HOME "
                        f"(or HF_HUB_CACHE) at a folder you can write")
    if isinstance(exc, (OfflineModeIsEnabled, LocalEntryNotFoundError)) and offline():
        return fail(target, f"HF_HUB_OFFLINE is set and {what} is not complete in the cache: {cache_note(target)}")
    network = _network_error(exc)
    if run is not None and filename is not None and (network is not None or "Consistency check failed" in str(exc)):
        reason = _reason(network) if network is not None else "the file came out the wrong size"
        return fail(target, f"the download of {what} was interrupted at {filename} ({reason}; huggingface_hub resumed it "
                        f"as long as it could) after {run.files_done} of {run.n_files} files: the finished files are "
                        f"kept in {cache_dir()}, so the same command resumes with the rest")
    if network is not None:
        return fail(target, f"cannot reach the Hub at {host} ({_reason(network)}) for {what}; {cache_note(target)}. "
                        f"Check the network (or HF_ENDPOINT); HF_HUB_OFFLINE=1 starts from the cache alone, "
                        f"`saetui download` fetches ahead where there is network")
    if isinstance(exc, HfHubHTTPError) and status is not None:
        if status == 429:
            return fail(target, f"the Hub at {host} is rate-limiting downloads of {what}: wait a minute and run again "
                            f"(logged-in users get more: {login})")
        if status >= 500:
            return fail(target, f"the Hub at {host} answered {status} for {what}: it is having trouble, try again later; "
                            f"{cache_note(target)}. HF_HUB_OFFLINE=1 starts from the cache alone")
        return fail(target, f"the Hub at {host} refused {what} ({status}): {first_line(exc)}")
    if isinstance(exc, FileMetadataError):
        return fail(target, f"{host} does not answer like a Hugging Face Hub for {what} (no commit or ETag in its "
                        f"answer): check HF_ENDPOINT, proxies and SSL certificates")
    return exc


__all__ = ["HubError", "DownloadCancelled", "Target", "Stored", "Progress", "StderrProgress", "model_target",
           "sae_target", "fetch", "cached", "cache_only", "reporting", "stop", "human_bytes", "human_time", "explain",
           "cache_dir", "endpoint", "offline"]
