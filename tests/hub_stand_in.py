"""A loopback stand-in for the Hugging Face Hub: tests (and a person trying the CLI or the app) download from it.

It speaks the part of the Hub's HTTP protocol that huggingface_hub uses to fetch files, as read in its
`file_download.py` (hf_hub_download, get_hf_file_metadata, http_get) and `hf_api.py` (model_info):

    GET  /api/models/{repo}[/revision/{rev}][?blobs=True]  model_info: sha, private, gated, siblings (rfilename, size, blobId)
    HEAD /{repo}/resolve/{rev}/{path}   X-Repo-Commit, ETag (X-Linked-Etag + X-Linked-Size for large files), Content-Length
    GET  /{repo}/resolve/{rev}/{path}   the bytes; `Range: bytes=N-` is answered 206 with Content-Range (resume)

Errors carry the Hub's X-Error-Code header (RepoNotFound, GatedRepo, EntryNotFound, RevisionNotFound), which is what
huggingface_hub turns into RepositoryNotFoundError, GatedRepoError and the rest. A gated repo answers 401 without
a token and 403 with one it does not know, as the Hub does. Knobs for tests: `rate` (bytes/s, to watch progress),
`status` (answer every request with it, e.g. 500), `cut_once` (the first GET of a file stops half way: the
connection drops), and `log` (every request: method, path, Range).

By hand (two shells):

    python -m tests.hub_stand_in serve --port 8765 --rate 50000
    HF_ENDPOINT=http://127.0.0.1:8765 HF_HOME=/tmp/hf python -m tests.hub_stand_in cli -- download \\
        --model stand-in/gemma2 --sae stand-in-res/blocks.1

`cli` runs the real `saetui` command with the stand-in's sae-lens release (`stand-in-res`, repo stand-in/saes)
added to sae-lens's registry, as the tests do; without it, the model alone works with `python -m saetui`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LARGE = 10_000  # files above this are served as LFS files are (X-Linked-Etag: their sha256)
MODEL_REPO, SAE_REPO, RELEASE = "stand-in/gemma2", "stand-in/saes", "stand-in-res"
GATED_MODEL, GATED_SAES, GATED_RELEASE = "stand-in/gated-gemma2", "stand-in/gated-saes", "stand-in-gated"
PRIVATE_MODEL = "stand-in/private-gemma2"
TOKEN = "hf_stand_in_token"  # the one token the stand-in accepts for its gated repos


@dataclass
class Repo:
    files: dict[str, bytes]
    gated: bool = False
    private: bool = False

    @property
    def sha(self) -> str:
        h = hashlib.sha1()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha1(self.files[name]).digest())
        return h.hexdigest()

    def etag(self, name: str) -> str:
        data = self.files[name]
        if len(data) > LARGE:
            return hashlib.sha256(data).hexdigest()
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # a git blob id, as the Hub gives


@dataclass
class Request:
    method: str
    path: str
    range: str | None = None


@dataclass
class StandInHub:
    """The server's state; `start()` serves it on 127.0.0.1 in a daemon thread."""

    repos: dict[str, Repo]
    rate: float | None = None            # bytes per second for file bodies (None: as fast as possible)
    status: int | None = None            # answer every request with this status (500: the Hub is down)
    cut_once: set[str] = field(default_factory=set)  # "repo/path": the first GET stops half way
    log: list[Request] = field(default_factory=list)
    echo: bool = False                   # print every request (the `serve` script)
    _server: ThreadingHTTPServer | None = None
    _open: set[socket.socket] = field(default_factory=set)  # kept-alive connections, closed by stop()

    def start(self, port: int = 0) -> StandInHub:
        hub = self

        class Handler(_Handler):
            state = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="hub-stand-in", daemon=True).start()
        return self

    def stop(self) -> None:
        """Gone, as a Hub that went down: the port closed and the connections clients keep alive dropped."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for conn in list(self._open):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._open.clear()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def files_requested(self, method: str = "GET") -> list[str]:
        """The resolve paths asked with `method`, as repo/path."""
        out = []
        for r in self.log:
            m = _RESOLVE.fullmatch(r.path)
            if r.method == method and m:
                out.append(f"{m['repo']}/{m['path']}")
        return out


_RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)")
_API = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+?)(?:/revision/(?P<rev>[^/]+))?")


class _Handler(BaseHTTPRequestHandler):
    state: StandInHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet: tests read `state.log`
        pass

    def setup(self) -> None:
        super().setup()
        self.state._open.add(self.connection)

    def finish(self) -> None:
        self.state._open.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    # ------------------------------------------------------------------ routing
    def _answer(self, head: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.state.log.append(Request(self.command, path, self.headers.get("Range")))
        if self.state.echo:
            print(self.command, path, self.headers.get("Range") or "", flush=True)
        if self.state.status is not None:
            return self._error(self.state.status, None, "stand-in says so")
        if m := _API.fullmatch(path):
            return self._model_info(m["repo"], m["rev"] or "main", "blobs" in parse_qs(url.query), head)
        if m := _RESOLVE.fullmatch(path):
            return self._resolve(m["repo"], m["rev"], m["path"], head)
        self._error(404, None, "no such route")

    def _repo(self, repo_id: str, rev: str, *, api: bool) -> Repo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None or (repo.private and not self._token_ok()):
            code = 401 if self.headers.get("Authorization") is None else 404
            self._error(code, "RepoNotFound", "Repository not found")
            return None
        if repo.gated and not api and not self._token_ok():
            code = 401 if self.headers.get("Authorization") is None else 403
            self._error(code, "GatedRepo", f"Access to model {repo_id} is restricted.")
            return None
        if rev not in ("main", repo.sha):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return None
        return repo

    def _token_ok(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {TOKEN}"

    def _model_info(self, repo_id: str, rev: str, blobs: bool, head: bool) -> None:
        repo = self._repo(repo_id, rev, api=True)
        if repo is None:
            return
        siblings = []
        for name, data in sorted(repo.files.items()):
            entry: dict[str, Any] = {"rfilename": name}
            if blobs:
                entry.update(size=len(data), blobId=hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())
                if len(data) > LARGE:
                    entry["lfs"] = {"size": len(data), "sha256": repo.etag(name), "pointerSize": 134}
            siblings.append(entry)
        body = json.dumps({"id": repo_id, "modelId": repo_id, "sha": repo.sha, "private": repo.private,
                           "gated": "manual" if repo.gated else False, "siblings": siblings}).encode()
        self._send(200, {"Content-Type": "application/json"}, body, head)

    def _resolve(self, repo_id: str, rev: str, name: str, head: bool) -> None:
        repo = self._repo(repo_id, rev, api=False)
        if repo is None:
            return
        if name not in repo.files:
            return self._error(404, "EntryNotFound", f"{name} does not exist", {"X-Repo-Commit": repo.sha})
        data, etag = repo.files[name], repo.etag(name)
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if len(data) > LARGE:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        start = 0
        if not head and (m := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")):
            start = int(m.group(1))
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        key = f"{repo_id}/{name}"
        cut = not head and key in self.state.cut_once
        if cut:
            self.state.cut_once.discard(key)
        self._send(206 if start else 200, headers, data[start:], head, cut=cut)

    # ------------------------------------------------------------------ writing
    def _error(self, code: int, error_code: str | None, message: str, extra: dict[str, str] | None = None) -> None:
        headers = {"X-Error-Message": message, "Content-Type": "application/json", **(extra or {})}
        if error_code:
            headers["X-Error-Code"] = error_code
        self._send(code, headers, json.dumps({"error": message}).encode(), self.command == "HEAD")

    def _send(self, code: int, headers: dict[str, str], body: bytes, head: bool, cut: bool = False) -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if head:
            return
        if cut:  # half the body, then the connection drops (a cut link): the client must resume with Range
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        rate = self.state.rate
        step = 8192 if rate is None else max(1024, int(rate / 20))
        for i in range(0, len(body), step):
            try:
                self.wfile.write(body[i : i + step])
            except (BrokenPipeError, ConnectionResetError):  # the client went away (cancelled)
                self.close_connection = True
                return
            if rate is not None:
                time.sleep(step / rate)


# ---------------------------------------------------------------------- content
def build_repos(root: str | Path, hidden: int = 64) -> dict[str, Repo]:
    """The stand-in's repos: a tiny Gemma-2 model (and a gated and a private copy), and a sae-lens release repo
    with two SAEs for it (and a gated copy). Decoys that a download must not fetch: README.md, .gitattributes,
    a pytorch_model.bin beside the safetensors weights, and the release's other SAE folder. `hidden` 512 makes
    40 MB of weights, enough to watch the progress of a slowed-down download (huggingface_hub counts 10 MB chunks)."""
    from saetui.models.synthetic import random_jumprelu_sae, tiny_model_dir

    root = Path(root)
    model_dir = root / f"model-{hidden}"
    if not (model_dir / "model.safetensors").is_file():
        tiny_model_dir("gemma2", model_dir, hidden=hidden)
    model = {p.name: p.read_bytes() for p in sorted(model_dir.iterdir()) if p.is_file()}
    model.update({"README.md": b"# a tiny model\n", ".gitattributes": b"*.safetensors filter=lfs\n",
                  "pytorch_model.bin": b"\0" * 50_000})
    saes: dict[str, bytes] = {"README.md": b"# tiny SAEs\n"}
    for layer in (1, 2):
        folder = root / f"sae{layer}-{hidden}"
        if not (folder / "cfg.json").is_file():
            random_jumprelu_sae(hidden, 256, f"blocks.{layer}.hook_resid_post", seed=layer,
                                model_name=MODEL_REPO).save_model(folder)
        for p in sorted(folder.iterdir()):
            saes[f"blocks.{layer}/{p.name}"] = p.read_bytes()
    return {
        MODEL_REPO: Repo(dict(model)),
        GATED_MODEL: Repo(dict(model), gated=True),
        PRIVATE_MODEL: Repo(dict(model), private=True),
        SAE_REPO: Repo(dict(saes)),
        GATED_SAES: Repo(dict(saes), gated=True),
    }


def releases() -> dict[str, Any]:
    """The stand-in's sae-lens releases, as sae-lens's registry holds them (pretrained_saes.yaml entries)."""
    from sae_lens.loading.pretrained_saes_directory import PretrainedSAELookup

    def lookup(release: str, repo: str) -> PretrainedSAELookup:
        ids = {"blocks.1": "blocks.1", "blocks.2": "blocks.2"}
        return PretrainedSAELookup(release=release, repo_id=repo, model=MODEL_REPO, conversion_func=None,
                                   saes_map=ids, expected_var_explained={}, expected_l0={},
                                   neuronpedia_id={k: None for k in ids}, norm_scaling_factor={},
                                   config_overrides=None)

    return {RELEASE: lookup(RELEASE, SAE_REPO), GATED_RELEASE: lookup(GATED_RELEASE, GATED_SAES)}


def register_releases() -> None:
    """Add the stand-in's releases to sae-lens's registry in this process (its directory is read once and cached)."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    get_pretrained_saes_directory().update(releases())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hub_stand_in")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the stand-in repos until interrupted")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--rate", type=float, help="bytes per second for file bodies (watch the progress)")
    serve.add_argument("--status", type=int, help="answer every request with this HTTP status")
    serve.add_argument("--root", default="/tmp/saetui-hub-stand-in", help="where the tiny model and SAEs are built")
    serve.add_argument("--hidden", type=int, default=64, help="the model's width (512: 40 MB of weights)")
    cli = sub.add_parser("cli", help="run `saetui ARGS` with the stand-in's sae-lens releases registered")
    cli.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "cli":
        register_releases()
        from saetui.cli import main as saetui_main

        return saetui_main(args.args[1:] if args.args[:1] == ["--"] else args.args)
    hub = StandInHub(build_repos(args.root, args.hidden), rate=args.rate, status=args.status, echo=True).start(args.port)
    print(f"Hub stand-in on {hub.url} (HF_ENDPOINT={hub.url}); repos: {', '.join(hub.repos)}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
