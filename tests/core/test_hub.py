"""First contact with the Hub, against a loopback stand-in (tests/hub_stand_in.py): downloads with progress, cached
starts that make no request, `download` then an offline start, and one-line errors that say what to do.

huggingface_hub reads HF_ENDPOINT, the cache folder and HF_HUB_OFFLINE once, at import (its `constants` module),
and conftest has set HF_HUB_OFFLINE=1 for the whole run: the `hub` fixture (conftest) points those constants at the
stand-in and a fresh cache for each test, so nothing here can reach a real Hub.
"""

from __future__ import annotations

import errno
import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from saetui import hub as hubmod
from saetui.errors import SaetuiError
from saetui.hub import DownloadCancelled, HubError, Progress, StderrProgress
from saetui.session import Session
from tests.conftest import point_hub_at
from tests.hub_stand_in import GATED_MODEL, GATED_RELEASE, MODEL_REPO, PRIVATE_MODEL, RELEASE, SAE_REPO, TOKEN, StandInHub

SAE = f"{RELEASE}/blocks.1"
GATED_SAE = f"{GATED_RELEASE}/blocks.1"
#: what a start of the model and SAE reads, and nothing else (README, .gitattributes, the .bin beside the
#: safetensors and the release's other SAE folder are decoys)
MODEL_FILES = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
SAE_FILES = {"blocks.1/cfg.json", "blocks.1/sae_weights.safetensors"}


class Events(list):
    """A progress sink that keeps every event."""

    live = False

    def __call__(self, p: Progress) -> None:
        self.append(p)

    def of(self, event: str) -> list[Progress]:
        return [p for p in self if p.event == event]


def fetched(server: StandInHub, repo: str | None = None) -> set[str]:
    return {f for f in server.files_requested("GET") if repo is None or f.startswith(repo + "/")}


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(SaetuiError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# ---------------------------------------------------------------------- progress, cache first
def test_download_reports_every_file_then_a_cached_start_asks_nothing(hub):
    events = Events()
    report = Session().download(MODEL_REPO, [SAE], progress=events)
    assert fetched(hub) == {f"{MODEL_REPO}/{f}" for f in MODEL_FILES} | {f"{SAE_REPO}/{f}" for f in SAE_FILES}
    (plan,) = events.of("plan")
    assert plan.n_files == 7 and plan.all_total == sum(len(hub.repos[MODEL_REPO].files[f]) for f in MODEL_FILES) + \
        sum(len(hub.repos[SAE_REPO].files[f]) for f in SAE_FILES)
    done = events.of("file_done")
    assert [p.file_no for p in done] == list(range(1, 8))
    assert {p.filename for p in done} == MODEL_FILES | SAE_FILES
    weights = [p for p in events.of("file") if p.filename == "model.safetensors"]
    assert weights[-1].done == weights[-1].total == len(hub.repos[MODEL_REPO].files["model.safetensors"])
    assert done[-1].all_done == plan.all_total and events[-1].event == "done"
    assert all(p.filename != "model.safetensors" for p in done[:4])  # weights last: an interrupted start never looks complete
    model, sae = report.items
    assert model["kind"] == "model" and model["files"] == 5 and model["fetched_files"] == 5
    assert Path(model["path"], "config.json").is_file() and model["bytes"] == sum(len(hub.repos[MODEL_REPO].files[f]) for f in MODEL_FILES)
    assert sae["folder"] == "blocks.1" and Path(sae["path"], "sae_weights.safetensors").is_file()

    hub.log.clear()
    session = Session()
    session.load(MODEL_REPO, [SAE], progress=Events())
    assert hub.log == []  # no HEAD, no listing: the cache is complete
    assert session.model.name == MODEL_REPO and session.saes.get().hook_name == "blocks.1.hook_resid_post"
    assert session.analyze("The cat sat").saes[0].name == "blocks.1"

    hub.stop()  # the Hub gone: the same start works
    again = Session()
    again.load(MODEL_REPO, [SAE], progress=Events())
    assert again.model is not None


def test_stderr_lines_per_file_and_json_stdout_stays_clean(hub, capsys):
    from saetui.cli import main

    code = main(["download", "--model", MODEL_REPO, "--sae", SAE, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)  # stdout: one JSON object, nothing else
    assert [i["name"] for i in data["items"]] == [MODEL_REPO, SAE] and data["host"] == hub.url
    lines = err.splitlines()
    assert lines[0].startswith("saetui: fetching 7 files (") and hub.url in lines[0]
    per_file = [l for l in lines if l.startswith("saetui: ") and "/7 " in l]
    assert len(per_file) == 7
    assert any("model.safetensors 680.9 kB in" in l for l in per_file), per_file
    assert lines[-1].startswith("saetui: fetched 7 files")

    code = main(["download", "--model", MODEL_REPO, "--sae", SAE])  # again: nothing to fetch, said so
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "already in the cache" in out and "HF_HUB_OFFLINE=1 saetui --model stand-in/gemma2 --sae stand-in-res/blocks.1" in out


def test_stderr_progress_line_has_size_and_rate():
    stream = io.StringIO()
    StderrProgress(stream)(Progress("file_done", "model m", "model.safetensors", 2, 3, done=5_000_000, total=5_000_000,
                                    file_elapsed=2.0))
    assert stream.getvalue() == "saetui: 2/3 model m: model.safetensors 5.0 MB in 2.0s (2.5 MB/s)\n"


def test_download_then_an_offline_start(hub, monkeypatch):
    from huggingface_hub import constants

    Session().download(MODEL_REPO, [SAE], progress=Events())
    hub.log.clear()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    session = Session()
    session.load(MODEL_REPO, [SAE], progress=Events())
    assert hub.log == [] and session.ready
    # what was never fetched: one line that says how to get it
    message = error_of(Session().load, PRIVATE_MODEL, progress=Events())
    assert "HF_HUB_OFFLINE is set" in message and "nothing of it is in the HF cache" in message
    assert f"saetui download --model {PRIVATE_MODEL}" in message and hub.log == []


def test_refresh_fetches_only_what_changed(hub):
    Session().download(MODEL_REPO, progress=Events())
    repo = hub.repos[MODEL_REPO]
    repo.files["generation_config.json"] = repo.files["generation_config.json"].replace(b"}", b', "temperature": 0.5}', 1)
    hub.log.clear()
    session = Session()
    session.load(MODEL_REPO, [], progress=Events())
    assert hub.log == []  # complete in the cache: the new commit is not asked for
    assert getattr(session.model.model.generation_config, "temperature", None) != 0.5
    session.load(MODEL_REPO, [], refresh=True, progress=Events())
    assert fetched(hub) == {f"{MODEL_REPO}/generation_config.json"}  # the rest: same blobs, HEAD only
    assert session.model.model.generation_config.temperature == 0.5


def test_a_cut_download_resumes_where_it_stopped(hub, monkeypatch):
    from huggingface_hub import constants

    # huggingface_hub keeps what arrived in whole chunks of DOWNLOAD_CHUNK_SIZE (10 MB); the tiny model's weights
    # are 0.7 MB, so chunks of 64 kB stand in for a multi-GB file cut after some chunks
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 65536)
    hub.cut_once.add(f"{MODEL_REPO}/model.safetensors")
    events = Events()
    Session().download(MODEL_REPO, progress=events)
    gets = [r for r in hub.log if r.method == "GET" and r.path.endswith("/model.safetensors")]
    size = len(hub.repos[MODEL_REPO].files["model.safetensors"])
    kept = size // 2 // 65536 * 65536  # the whole chunks before the cut
    assert [r.range for r in gets] == [None, f"bytes={kept}-"]  # the second asks for the rest only
    weights = [p.done for p in events.of("file") if p.filename == "model.safetensors"]
    assert weights == sorted(weights) and weights[-1] == size  # the count goes on from where it stopped
    stored = hubmod.cached(hubmod.model_target(MODEL_REPO))
    assert (stored.path / "model.safetensors").read_bytes() == hub.repos[MODEL_REPO].files["model.safetensors"]


def test_a_stopped_download_keeps_finished_files_and_the_next_one_fetches_the_rest(hub):
    stop = threading.Event()

    class StopAtWeights(Events):
        def __call__(self, p: Progress) -> None:
            super().__call__(p)
            if p.event == "file" and p.filename == "model.safetensors" and p.done:
                stop.set()

    hub.rate = 200_000  # slow enough that the weights arrive in several updates
    events = StopAtWeights()
    with pytest.raises(DownloadCancelled) as info:
        Session().download(MODEL_REPO, progress=events, cancel=stop)
    assert "cancelled" in str(info.value) and "kept" in str(info.value)
    assert events[-1].event == "stopped" and events[-1].files_done == 4
    blobs = Path(hubmod.cache_dir(), "models--stand-in--gemma2", "blobs")
    assert not [p for p in blobs.iterdir() if p.name.endswith(".incomplete")]  # nothing half-written stays
    assert hubmod.cached(hubmod.model_target(MODEL_REPO)) is None
    hub.rate, before = None, set(fetched(hub))
    hub.log.clear()
    Session().download(MODEL_REPO, progress=Events())
    assert fetched(hub) == {f"{MODEL_REPO}/model.safetensors"} and f"{MODEL_REPO}/config.json" in before


# ---------------------------------------------------------------------- errors: one line, what to do
def test_gated_model_without_a_token_says_accept_the_licence_then_log_in(hub):
    message = error_of(Session().load, GATED_MODEL, [], progress=Events())
    assert f"{GATED_MODEL} is gated: accept its licence at {hub.url}/{GATED_MODEL}" in message
    assert "HF_TOKEN=" in message and "hf auth login" in message
    assert fetched(hub) == set()


def test_gated_model_with_a_token_that_has_no_access(hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_approved")
    message = error_of(Session().download, GATED_MODEL, progress=Events())
    assert f"your token cannot read the gated repo {GATED_MODEL}" in message and "accept its licence" in message


def test_gated_model_with_an_approved_token_downloads(hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    Session().download(GATED_MODEL, progress=Events())
    assert fetched(hub) == {f"{GATED_MODEL}/{f}" for f in MODEL_FILES}


def test_a_gated_sae_fails_before_the_model_downloads(hub):
    message = error_of(Session().load, MODEL_REPO, [GATED_SAE], progress=Events())
    assert f"SAE {GATED_SAE}: stand-in/gated-saes is gated: accept its licence" in message
    assert "is it in the HF cache" not in message
    assert fetched(hub) == set()  # every repo is asked about before any bytes


@pytest.mark.parametrize("name", ["stand-in/Gemma2", PRIVATE_MODEL])
def test_unknown_or_private_model_names_the_id_and_case(hub, name):
    message = error_of(Session().load, name, [], progress=Events())
    assert f"no repo {name!r} on {hub.url}" in message and "case-sensitive" in message
    assert "if it is private" in message and "hf auth login" in message


def test_hub_answering_500_is_one_line_with_what_to_do(hub):
    hub.status = 500
    message = error_of(Session().load, MODEL_REPO, [], progress=Events())
    assert f"the Hub at {hub.url} answered 500 for model {MODEL_REPO}" in message
    assert "try again later" in message and "HF_HUB_OFFLINE=1" in message


def test_unreachable_hub_fails_at_once_without_retries(hub, monkeypatch):
    import time

    url = hub.url
    hub.stop()  # nothing listens there now: connection refused
    slept = []
    monkeypatch.setattr(time, "sleep", lambda s: slept.append(s))  # huggingface_hub's backoff would sleep here
    message = error_of(Session().load, MODEL_REPO, [SAE], progress=Events())
    assert f"cannot reach the Hub at {url} (connection refused) for model {MODEL_REPO}" in message
    assert "nothing of it is in the HF cache" in message and "HF_HUB_OFFLINE=1" in message
    assert slept == []  # no retry, no backoff


def test_unreachable_hub_says_what_is_cached(hub):
    Session().download(MODEL_REPO, progress=Events())
    (hubmod.cached(hubmod.model_target(MODEL_REPO)).path / "model.safetensors").unlink()
    hub.stop()
    message = error_of(Session().load, MODEL_REPO, [], progress=Events())
    assert "has part of it, not the weights" in message, message


def test_a_hub_that_never_answers_times_out_once(monkeypatch, tmp_path):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never answers
    try:
        point_hub_at(f"http://127.0.0.1:{listener.getsockname()[1]}", tmp_path, monkeypatch)
        monkeypatch.setattr(hubmod, "HUB_TIMEOUT", 0.5)
        message = error_of(hubmod.fetch, [hubmod.model_target(MODEL_REPO)])
        assert "(timed out)" in message and "cannot reach the Hub" in message
    finally:
        listener.close()


def test_disk_too_small_is_refused_before_any_byte(hub, monkeypatch):
    monkeypatch.setattr(hubmod, "_free_bytes", lambda folder: 1000)
    message = error_of(Session().download, MODEL_REPO, [SAE], progress=Events())
    assert f"the disk holding the HF cache ({hubmod.cache_dir()}) has too little room for model" in message
    assert "1.0 kB free" in message and "826.1 kB needed" in message and "HF_HOME" in message
    assert fetched(hub) == set()


def test_disk_full_while_writing_is_the_same_line():
    target = hubmod.model_target(MODEL_REPO)
    error = hubmod.explain(OSError(errno.ENOSPC, "No space left on device"), target)
    assert isinstance(error, HubError) and "is full for model" in str(error) and "HF_HOME" in str(error)


def test_a_download_interrupted_for_good_says_the_same_command_resumes(hub, monkeypatch):
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)  # huggingface_hub's own resume attempts, without waiting
    hub.cut_once.add(f"{MODEL_REPO}/model.safetensors")
    real = hub.cut_once

    class AlwaysCut(set):
        def discard(self, item):  # the link drops on every attempt
            pass

    hub.cut_once = AlwaysCut(real)
    message = error_of(Session().download, MODEL_REPO, progress=Events())
    assert "the download of model stand-in/gemma2 was interrupted at model.safetensors" in message
    assert "after 4 of 5 files" in message and "the same command resumes" in message


def test_bad_ids_fail_before_any_request(hub):
    assert "neither a folder nor a Hub model id" in error_of(Session().load, "a b", [])
    assert "no model directory" in error_of(Session().load, "./no/such/dir", [])
    assert "unknown SAE release" in error_of(Session().download, MODEL_REPO, ["no-such-release/x"])
    assert hub.log == []


# ---------------------------------------------------------------------- the real CLI, by its process
def test_cli_first_start_downloads_with_progress_and_a_later_one_needs_no_hub(hub, tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "cli-hf"), PYTHONPATH=str(Path(__file__).parents[2]))
    argv = [sys.executable, "-m", "tests.hub_stand_in", "cli", "--", "analyze", "--model", MODEL_REPO, "--sae", SAE,
            "--prompt", "The cat sat", "--json"]
    first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["saes"][0]["hook"] == "blocks.1.hook_resid_post"
    assert "saetui: fetching 7 files" in first.stderr and "model.safetensors 680.9 kB in" in first.stderr
    hub.stop()
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0 and second.stderr == ""
    assert json.loads(second.stdout)["tokens"] == json.loads(first.stdout)["tokens"]


def test_download_lists_local_folders_as_they_are_and_needs_something(hub, capsys, sae_dir):
    from saetui.cli import main

    assert main(["download"]) == 2
    assert "nothing to download: give a model (--model) and/or SAEs (--sae)" in capsys.readouterr().err
    assert main(["download", "--sae", str(sae_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["items"] == [{"kind": "SAE", "name": str(sae_dir), "path": str(sae_dir), "source": "local"}]
    assert hub.log == []
