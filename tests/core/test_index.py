"""FeatureIndex: running top-k equals brute force, counts and histograms are exact, resume is exact."""

from __future__ import annotations

import json

import pytest
import torch

from saetui.activations.collector import ActivationCollector
from saetui.errors import InputError
from saetui.sae.index import FeatureIndex, IndexSettings, build_index
from saetui.sae.manager import SAEManager
from tests.tolerance import assert_close_reduction, near, path_length, reduction_bound

TEXTS = [f"The cat number {i} sat on {'the ' * (i % 3)}mat and looked at {i % 5} birds." for i in range(37)]


@pytest.fixture()
def loaded(gemma2, make_sae):
    manager = SAEManager(gemma2)
    return manager.add(make_sae(64, 128, "blocks.1.hook_resid_post"), name="s", spec="test-sae")


def brute_force(model, loaded, *, pre: bool = False):
    """All latents of all counted tokens, with their corpus positions (and, with `pre`, the JumpReLU
    pre-activations that decide whether each fires), every document alone."""
    lats, pres, positions, n = [], [], [], 0
    sae = loaded.sae
    for text in TEXTS:
        batch = model.tokenize(text)
        acts = ActivationCollector(model).run(batch, [loaded.hook_name])[0][loaded.hook_name][0]
        keep = ~batch.special_mask[0]
        with torch.inference_mode():
            lats.append(sae.encode(acts[keep]))
            pres.append(sae.process_sae_in(acts[keep]) @ sae.W_enc + sae.b_enc)
        positions.append(torch.arange(n, n + len(keep))[keep])
        n += len(keep)
    out = torch.cat(lats), torch.cat(positions)
    return (*out, torch.cat(pres)) if pre else out


def _uncertain(model, loaded, edges, brute=None):
    """Which counted latents (brute force's rows, d_sae) a build whose forward has other shapes (batch, threads)
    could count differently: (at_threshold, at_any). Counts and histograms are integers made from floats: equal
    across shapes only away from the edges. at_threshold: the pre-activation lies within rounding of the
    threshold (fired on one side, not on the other); at_any: that, or it fires within rounding of a histogram
    edge (which bin)."""
    lat, _, pre = brute or brute_force(model, loaded, pre=True)
    bound = reduction_bound(float(pre.abs().max()), path_length(model, loaded.hook_name, loaded.sae.cfg.d_in), torch.float32)
    at_threshold = (pre - loaded.sae.threshold.detach()).abs() <= bound  # each feature's own threshold
    at_any = at_threshold | (near(lat, edges, bound) & (lat > 0))
    assert float(at_any.float().mean()) < 0.01, "too many latents at an edge to compare counts: pick other data"
    return at_threshold, at_any


def _assert_same_counts(got, want, uncertain, what=""):
    """Counts and histograms of two builds over the same tokens: equal but for latents at an edge (`_uncertain`)."""
    at_threshold, at_any = (u.sum(0) for u in uncertain)
    assert got.n_tokens == want.n_tokens, what
    assert torch.equal(got.hist.sum(1), torch.full_like(got.counts, got.n_tokens)), what  # every token in one bin
    assert bool(((got.counts - want.counts).abs() <= at_threshold).all()), f"{what}: counts"
    moved = (got.hist[:, 1:] - want.hist[:, 1:]).abs().sum(1)  # a latent changing bin moves one count out and one in
    assert bool((moved <= 2 * at_any).all()), f"{what}: hist"


def _assert_same_top(model, loaded, got, want, uncertain, what=""):
    """Top values of two builds over the same tokens: equal to rounding, and where a feature has a latent at its
    threshold (`_uncertain`) and fewer than K clearly above it, one build may list that latent and the other 0."""
    n = path_length(model, loaded.hook_name, loaded.sae.cfg.d_in)
    bound = reduction_bound(float(want.top_vals.abs().max()), n, torch.float32)
    threshold = loaded.sae.threshold.detach()
    open_slot = (want.top_vals > (threshold + 2 * bound)[:, None]).sum(1) < want.top_vals.shape[1]
    either = torch.where(uncertain[0].any(0) & open_slot, threshold + bound, torch.zeros(()))
    assert_close_reduction(got.top_vals, want.top_vals, bound=(bound + either)[:, None], what=f"{what} top_vals")


def test_running_topk_counts_and_histogram_are_exact(gemma2, loaded, tmp_path):
    index = build_index(gemma2, loaded, TEXTS, tmp_path / "idx", settings=IndexSettings(top_k=5, batch_size=4), progress=False)
    lat, pos, _ = brute = brute_force(gemma2, loaded, pre=True)
    # brute force runs each document alone, the build 4 padded documents per forward: other matmul shapes, so
    # values agree to rounding and counts but for latents at an edge (tests/tolerance.py)
    bound = reduction_bound(float(lat.abs().max()), path_length(gemma2, loaded.hook_name, loaded.sae.cfg.d_in), torch.float32)
    at_threshold, _ = _uncertain(gemma2, loaded, index.edges, brute)
    threshold = loaded.sae.threshold.detach()
    vals, idx = lat.topk(5, dim=0)
    row_of = {int(p): r for r, p in enumerate(pos)}
    for f in range(loaded.d_sae):
        # The same top values as brute force, and each stored position really has that activation.
        # (Documents share prefixes, so equal activations at several positions are common: ties may pick any.)
        got = [(v, p) for v, p in zip(index.top_vals[f].tolist(), index.top_pos[f].tolist()) if v > 0]
        want = [v for v in vals[:, f].tolist() if v > 0]
        # where a latent of f sits at its threshold and fewer than 5 are clearly above it, one side may list it
        # and the other not: then only the check below (each listed value is real)
        if not at_threshold[:, f].any() or sum(v > threshold[f] + 2 * bound for v in want) == 5:
            assert_close_reduction(torch.tensor([v for v, _ in got]), torch.tensor(want), bound=bound, what=f"feature {f}")
        for v, p in got:
            either = threshold[f] + bound if at_threshold[row_of[p], f] else 0.0  # fired here, not there
            assert_close_reduction(lat[row_of[p], f], torch.tensor(v), bound=bound + either, what=f"feature {f} at {p}")
    assert sum(index.top_vals[:, 0] > 0) > 20  # many features fire, so the comparison above has teeth
    assert index.n_tokens == lat.shape[0]
    fired = (lat > 0).sum(0)
    assert bool(((index.counts - fired).abs() <= at_threshold.sum(0)).all())
    assert torch.equal(index.hist.sum(1), torch.full((loaded.d_sae,), lat.shape[0]))
    assert torch.equal(index.hist[:, 0], index.n_tokens - index.counts)  # "did not fire" = the rest
    # Top examples are never BOS/pad, and their windows contain the firing token.
    f = int(index.counts.argmax())
    for val, window, at in index.examples(f):
        assert window[at] != gemma2.tokenizer.bos_token_id and val > 0


def test_a_killed_build_resumes_to_the_same_index(gemma2, loaded, tmp_path, monkeypatch):
    settings = IndexSettings(top_k=4, batch_size=3)
    whole = build_index(gemma2, loaded, TEXTS, tmp_path / "whole", settings=settings, progress=False)
    calls = {"n": 0}
    original = ActivationCollector.run

    def dying(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ActivationCollector, "run", dying)
    with pytest.raises(KeyboardInterrupt):
        build_index(gemma2, loaded, TEXTS, tmp_path / "part", settings=settings, progress=False, checkpoint_every=2)
    manifest = json.loads((tmp_path / "part" / "manifest.json").read_text())
    assert manifest["complete"] is False and manifest["docs_done"] == 18  # checkpoint after 6 of 13 batches
    with pytest.raises(InputError, match="unfinished"):
        FeatureIndex.load(tmp_path / "part")
    monkeypatch.setattr(ActivationCollector, "run", original)
    resumed = build_index(gemma2, loaded, TEXTS, tmp_path / "part", settings=settings, progress=False, resume=True)
    for name in ("top_vals", "top_pos", "counts", "hist", "tokens", "doc_start"):
        assert torch.equal(getattr(whole, name), getattr(resumed, name)), name


def test_bad_inputs(gemma2, loaded, make_sae, tmp_path):
    with pytest.raises(InputError, match="no dataset file"):
        build_index(gemma2, loaded, tmp_path / "missing.txt", tmp_path / "a", progress=False)
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(InputError, match="has no text"):
        build_index(gemma2, loaded, tmp_path / "empty.txt", tmp_path / "a", progress=False)
    (tmp_path / "c.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(InputError, match="has no field 'text'"):
        build_index(gemma2, loaded, tmp_path / "c.jsonl", tmp_path / "a", progress=False)
    build_index(gemma2, loaded, TEXTS[:4], tmp_path / "ok", progress=False)
    other = SAEManager(gemma2).add(make_sae(64, 128, "blocks.2.hook_resid_post", seed=3), name="o", spec="other-sae")
    with pytest.raises(InputError, match="built for another model or SAE .*sae: index has 'test-sae'"):
        FeatureIndex.load(tmp_path / "ok", gemma2, other)
    with pytest.raises(InputError, match="already holds an index"):
        build_index(gemma2, loaded, TEXTS[:4], tmp_path / "ok", progress=False)
    (tmp_path / "ok" / "index.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match="corrupt feature index"):
        FeatureIndex.load(tmp_path / "ok")


def test_cli_builds_and_searches_an_index(capsys, gemma2_dir, sae_dir, tmp_path):
    from saetui.cli import main

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:10]))
    assert main(["index", "--model", str(gemma2_dir), "--sae", str(sae_dir), "--corpus", str(corpus)]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["tokens"] > 100 and built["features_firing"] > 0
    assert main(["search", "cat", "--model", str(gemma2_dir), "--sae", str(sae_dir), "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert any(h["why"].startswith("fires on ' cat' ") for h in hits)  # found through the default-location index
    assert main(["index", "--model", str(gemma2_dir), "--sae", str(sae_dir), "--corpus", str(tmp_path / "none.txt")]) == 2
    assert "no dataset file" in capsys.readouterr().err


@pytest.mark.parametrize("rank, reports", [("1", False), ("junk", True)])
def test_under_torchrun_rank_0_reports_and_a_rank_that_is_no_number_fails_nothing(rank, reports, capsys, gemma2_dir,
                                                                                   sae_dir, tmp_path, monkeypatch):
    """RANK=junk (set by something other than torchrun) made a finished build exit 1 (int('junk'))."""
    from saetui.cli import main

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(TEXTS[:4]) + "\n")
    monkeypatch.setenv("RANK", rank)
    assert main(["index", "--model", str(gemma2_dir), "--sae", str(sae_dir), "--corpus", str(corpus),
                 "--out", str(tmp_path / "idx")]) == 0
    out = capsys.readouterr().out
    assert (json.loads(out)["tokens"] > 0) if reports else out == ""


@pytest.mark.parametrize("rank, reports", [("0", True), ("00", True), ("0" * 5000, True), ("0" * 4999 + "1", False),
                                           ("2", False), ("", True), ("junk", True)],
                         ids=["0", "00", "5000-zeros", "5000-digits-1", "2", "unset", "junk"])
def test_which_ranks_report(rank, reports, monkeypatch):
    """Rank 0 (however written, 5000 digits too: int() of them raised) and no torchrun report; other ranks do not."""
    from saetui.cli.common import reports as reporting

    monkeypatch.setenv("RANK", rank)
    assert reporting() is reports


def test_the_demo_ships_an_index_with_labels():
    from saetui.session import Session

    session = Session()
    session.load()
    hits = session.search("colour", "demo").hits  # typo-tolerant, token-aware label match
    # Every feature the shipped labels call a colour comes first, found through its label (4 in today's demo).
    colour = {f for (sae, f), label in session.labels.items() if sae == "demo" and label.startswith("color")}
    assert len(colour) >= 3 and {h.feature for h in hits[:len(colour)]} == colour
    assert all(h.label.startswith("color") and h.why.startswith("label 'color") for h in hits[:len(colour)])
    info = session.feature_info(hits[0].feature, "demo")
    assert info.density is not None and 0 < info.density < 1
    top = info.top_examples[0]  # the firing token is marked, with its activation
    assert top.tokens[top.at] and top.acts[top.at] == pytest.approx(top.value, abs=1e-5)
    assert session.saes.get("demo").max_activations is not None


def test_labels_import_from_neuronpedia_and_csv(capsys, gemma2_dir, sae_dir, tmp_path):
    from saetui.cli import main
    from saetui.inputs import read_labels

    (tmp_path / "np.json").write_text(json.dumps([{"modelId": "m", "index": "3", "description": "cats and dogs"},
                                                   {"modelId": "m", "index": "7", "description": "the word mat"}]))
    (tmp_path / "np.jsonl").write_text('{"index": 5, "description": "birds"}\n')
    (tmp_path / "l.csv").write_text("feature,label\n9,numbers\n")
    assert read_labels(tmp_path / "np.json") == {3: "cats and dogs", 7: "the word mat"}
    assert read_labels(tmp_path / "np.jsonl") == {5: "birds"}
    assert read_labels(tmp_path / "l.csv") == {9: "numbers"}
    (tmp_path / "bad.json").write_text('[{"nothing": 1}]')
    with pytest.raises(InputError, match="expected Neuronpedia JSON/JSONL"):
        read_labels(tmp_path / "bad.json")
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(TEXTS[:6]))
    common = ["--model", str(gemma2_dir), "--sae", str(sae_dir)]
    assert main(["index", *common, "--corpus", str(corpus)]) == 0
    capsys.readouterr()
    assert main(["labels", str(tmp_path / "np.json"), *common]) == 0
    assert json.loads(capsys.readouterr().out)["labels"] == 2
    assert main(["search", "cats", *common, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"][0] == {
        "feature": 3, "label": "cats and dogs", "score": pytest.approx(2 + 0.9 + 0.1 / 3), "sae": "sae",  # 1 of 3 words
        "why": "label 'cats and dogs' (exact word 'cats'; 1 of 3 label words)"}
    (tmp_path / "far.csv").write_text("feature,label\n100000,x\n")
    assert main(["labels", str(tmp_path / "far.csv"), *common]) == 2
    assert "outside 0..255" in capsys.readouterr().err


@pytest.mark.slow
def test_two_torchrun_ranks_build_the_same_index(gemma2, loaded, gemma2_dir, sae_dir, tmp_path):
    """2 CPU ranks (gloo, loopback only) shard the batches; the merged index equals a one-process build."""
    import subprocess
    import sys

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(TEXTS))
    common = ["--model", str(gemma2_dir), "--sae", str(sae_dir), "--corpus", str(corpus), "--batch-size", "4", "--top-k", "6"]
    from saetui.cli import main

    assert main(["index", *common, "--out", str(tmp_path / "one")]) == 0
    import socket

    with socket.socket() as sock:  # a free loopback port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
         f"--master_port={port}", "-m", "saetui", "index", *common, "--out", str(tmp_path / "two")],
        capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    one, two = FeatureIndex.load(tmp_path / "one"), FeatureIndex.load(tmp_path / "two")
    for name in ("tokens", "doc_start"):
        assert torch.equal(getattr(one, name), getattr(two, name)), name
    # each rank runs single-threaded (OMP_NUM_THREADS=1), the one-process build with two threads: other BLAS
    # kernels, so the values agree to the rounding of the sums on their way, and the counts but for latents
    # that rounding can move across an edge (tests/tolerance.py)
    built = SAEManager(gemma2).load(str(sae_dir))
    uncertain = _uncertain(gemma2, built, one.edges)
    _assert_same_counts(two, one, uncertain, "torchrun")
    _assert_same_top(gemma2, built, two, one, uncertain, "torchrun")
    # Equal activations at several positions (shared prefixes) may be kept in either order: check each is real.
    same = one.top_pos == two.top_pos
    assert same.float().mean() > 0.5
    bound = reduction_bound(float(one.top_vals.abs().max()), path_length(gemma2, built.hook_name, built.sae.cfg.d_in), torch.float32)
    for f, k in (~same).nonzero().tolist():
        p = int(two.top_pos[f, k])
        assert p in one.top_pos[f].tolist() or abs(float(two.top_vals[f, k]) - float(one.top_vals[f, k])) <= bound


def test_a_corrupt_index_is_skipped_and_the_session_runs_without_it(gemma2, loaded):
    from saetui.sae.index import default_index_dir
    from saetui.session import Session

    root = default_index_dir(gemma2, loaded)
    root.mkdir(parents=True)
    (root / "manifest.json").write_text("{not json")
    (root / "index.safetensors").write_bytes(b"nope")
    session = Session()
    session.attach(gemma2, loaded_manager(gemma2, loaded))
    assert session.indexes == {}
    assert session.analyze("The cat sat").tokens  # everything else still works
    assert session.feature_info(3).density is None


def loaded_manager(model, loaded):
    manager = SAEManager(model)
    manager.add(loaded.sae, name=loaded.name, spec=loaded.spec)
    return manager


def _same_index(a, b):
    """Same batches in the same shapes (a resumed build): the same kernels, so the same bits."""
    for name in ("top_vals", "top_pos", "counts", "hist", "tokens", "doc_start"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.n_tokens == b.n_tokens


def test_a_kill_between_the_weights_and_the_manifest_is_never_resumed_from(gemma2, loaded, tmp_path, monkeypatch):
    """os.replace fails on the 4th call: the second checkpoint's weights are in place, its manifest is not.
    The old manifest must not be trusted with the new weights: resume sets both aside and starts over."""
    import os

    from saetui import files

    settings = IndexSettings(top_k=4, batch_size=3)
    whole = build_index(gemma2, loaded, TEXTS, tmp_path / "whole", settings=settings, progress=False)
    calls = {"n": 0}
    original = os.replace

    def dying_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the process dies here
        return original(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        build_index(gemma2, loaded, TEXTS, part, settings=settings, progress=False, checkpoint_every=2)
    monkeypatch.setattr(os, "replace", original)
    assert json.loads((part / "manifest.json").read_text())["docs_done"] == 6  # first checkpoint's manifest
    assert not [p for p in part.iterdir() if p.name.endswith(".tmp")]  # the failed write left no temporary
    with pytest.raises(InputError, match="does not belong to manifest.json"):
        FeatureIndex.load(part)
    files.take_notices()
    resumed = build_index(gemma2, loaded, TEXTS, part, settings=settings, progress=False, resume=True)
    _same_index(whole, resumed)
    notes = files.take_notices()
    assert len(notes) == 2 and all("starting the index over" in n and "kept aside as" in n for n in notes)
    assert len(list(part.glob("manifest.json.bak-*"))) == 1 and len(list(part.glob("index.safetensors.bak-*"))) == 1


def test_a_kill_during_the_weights_write_resumes_exactly(gemma2, loaded, tmp_path, monkeypatch):
    """A kill while the weights are written (3rd os.replace: second checkpoint's weights) leaves the first
    checkpoint whole: resume continues from it to the same index as a clean build."""
    import os

    settings = IndexSettings(top_k=4, batch_size=3)
    whole = build_index(gemma2, loaded, TEXTS, tmp_path / "whole", settings=settings, progress=False)
    calls = {"n": 0}
    original = os.replace

    def dying_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        build_index(gemma2, loaded, TEXTS, tmp_path / "part", settings=settings, progress=False, checkpoint_every=2)
    monkeypatch.setattr(os, "replace", original)
    assert not [p for p in (tmp_path / "part").iterdir() if p.name.endswith(".tmp")]
    resumed = build_index(gemma2, loaded, TEXTS, tmp_path / "part", settings=settings, progress=False, resume=True)
    _same_index(whole, resumed)
    assert not list((tmp_path / "part").glob("*.bak-*"))  # nothing was damaged


@pytest.mark.parametrize("damage", ["truncated weights", "garbage manifest", "empty manifest", "list manifest",
                                    "no manifest", "no weights"])
def test_resume_sets_a_damaged_partial_index_aside_and_starts_over(gemma2, loaded, tmp_path, damage):
    from saetui import files

    settings = IndexSettings(top_k=4, batch_size=3)
    texts = TEXTS[:12]
    whole = build_index(gemma2, loaded, texts, tmp_path / "whole", settings=settings, progress=False)
    part = tmp_path / "part"
    build_index(gemma2, loaded, texts, part, settings=settings, progress=False)
    weights, manifest = part / "index.safetensors", part / "manifest.json"
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "garbage manifest":
        manifest.write_bytes(b"\x00\xffgarbage")
    elif damage == "empty manifest":
        manifest.write_text("")
    elif damage == "list manifest":
        manifest.write_text("[]")
    elif damage == "no manifest":
        manifest.unlink()
    else:
        weights.unlink()
    files.take_notices()
    resumed = build_index(gemma2, loaded, texts, part, settings=settings, progress=False, resume=True)
    _same_index(whole, resumed)
    notes = files.take_notices()
    assert notes and all("\n" not in n and "kept aside as" in n for n in notes)
    assert list(part.glob("*.bak-*"))


def test_a_complete_index_with_a_damaged_manifest_is_refused_in_one_line(gemma2, loaded, tmp_path):
    from saetui.sae.index import find_index

    build_index(gemma2, loaded, TEXTS[:4], tmp_path / "ok", settings=IndexSettings(top_k=2), progress=False)
    for content in ("[]", "{}", '{"n_tokens": "x"}', "null", '{"n_tokens": 3, "settings": 5}'):
        saved = (tmp_path / "ok" / "manifest.json").read_text()
        (tmp_path / "ok" / "manifest.json").write_text(content)
        with pytest.raises(InputError, match="corrupt feature index") as err:
            FeatureIndex.load(tmp_path / "ok", gemma2, loaded)
        assert "\n" not in str(err.value)
        assert find_index(gemma2, loaded, [tmp_path / "ok"]) is None
        (tmp_path / "ok" / "manifest.json").write_text(saved)
    assert find_index(gemma2, loaded, [tmp_path / "missing", tmp_path / "ok"]).root == tmp_path / "ok"


def test_index_out_is_checked_before_any_work(gemma2, loaded, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    ran = {"n": 0}
    original = ActivationCollector.run

    def counting(self, *args, **kwargs):
        ran["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ActivationCollector, "run", counting)
    with pytest.raises(InputError, match="is a file, not a folder"):
        build_index(gemma2, loaded, TEXTS, tmp_path / "afile", progress=False)
    with pytest.raises(InputError, match="cannot create the index folder /proc"):
        build_index(gemma2, loaded, TEXTS, "/proc/nope/idx", progress=False)
    assert ran["n"] == 0


def test_a_build_or_a_cli_run_that_fails_before_its_first_save_leaves_no_folder(gemma2, loaded, tmp_path, monkeypatch,
                                                                               capsys):
    """The folder is checked before any work but made by the first save: a corpus with a bad record, or a
    forward that fails, leaves no empty --out behind (a rerun would have taken it for a place to build in)."""
    from saetui.activations.collector import ActivationCollector
    from saetui.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": 5}\n')
    assert main(["index", "--corpus", str(bad), "--out", str(tmp_path / "new" / "idx")]) == 2
    assert "field 'text' is int" in capsys.readouterr().err and not (tmp_path / "new").exists()

    def failing(self, *args, **kwargs):
        raise RuntimeError("a forward that fails")

    monkeypatch.setattr(ActivationCollector, "run", failing)
    with pytest.raises(RuntimeError):
        build_index(gemma2, loaded, TEXTS, tmp_path / "idx", progress=False)
    assert not (tmp_path / "idx").exists()


def test_the_running_state_is_the_same_whatever_the_pieces():
    """update_pieces over a batch cut into pieces equals one update of the whole batch, and both equal
    brute force; negative latents (an SAE without a ReLU) neither count as firing nor enter the top-K."""
    from saetui.sae.index import IndexBuilder

    gen = torch.Generator().manual_seed(0)
    batches = [torch.relu(torch.randn(n, 64, generator=gen) - 1.5) for n in (50, 7, 90, 1, 33)]
    batches[2][:, :5] = -torch.rand(90, 5, generator=gen)  # negative, never fired
    settings = IndexSettings(top_k=6)
    whole, cut = IndexBuilder(64, settings, "cpu"), IndexBuilder(64, settings, "cpu")
    n = 0
    for lat in batches:
        pos = torch.arange(n, n + len(lat))
        whole.update(lat, pos)
        cut.update_pieces([(lat[i : i + 8], pos[i : i + 8]) for i in range(0, len(lat), 8)])
        n += len(lat)
    for name in ("top_vals", "top_pos", "counts", "hist"):
        assert torch.equal(whole.tensors()[name], cut.tensors()[name]), name
    lat = torch.cat(batches)
    fired = lat > 0
    assert torch.equal(whole.counts, fired.sum(0)) and whole.counts[:5].sum() < fired[:, :5].numel()
    assert torch.equal(whole.tensors()["hist"][:, 0], (~fired).sum(0))
    want = lat.clamp(min=0).topk(6, dim=0).values.T  # the K best positive values, 0 where fewer fired
    got = whole.top_vals.clamp(min=0)
    assert torch.equal(got, want)
    taken = whole.top_pos >= 0
    assert torch.equal(lat[whole.top_pos[taken], torch.arange(64)[:, None].expand(-1, 6)[taken]], whole.top_vals[taken])


def test_equal_activations_keep_the_earliest_positions_however_the_corpus_is_cut():
    """A shared prefix fires alike in many documents: among equal values the earlier position is kept first, in one
    batch, in many, in pieces, and where two ranks' lists merge (the rank with the earlier documents first); the
    kept examples were the kernels' choice, and two torchrun ranks kept other ones than one process."""
    from saetui.sae.index import IndexBuilder
    from saetui.sae.index.stats import top_k_first_kept

    gen = torch.Generator().manual_seed(1)
    lat = torch.randint(0, 3, (120, 16), generator=gen).float()  # values 0, 1, 2: ties everywhere
    pos = torch.arange(120)
    settings = IndexSettings(top_k=5)
    want_pos = torch.stack([  # by value, then by position
        torch.tensor(sorted(range(120), key=lambda p: (-float(lat[p, f]), p))[:5]) for f in range(16)])
    want_pos[lat.gather(0, want_pos.T).T == 0] = -1  # a 0 never fired: not an example
    for cuts in ([120], [1] * 120, [7, 50, 3, 60], [64, 56]):
        b, n = IndexBuilder(16, settings, "cpu"), 0
        for size in cuts:
            b.update_pieces([(lat[i : min(i + 5, n + size)], pos[i : min(i + 5, n + size)])
                             for i in range(n, n + size, 5)])
            n += size
        assert torch.equal(b.top_pos, want_pos), cuts
    ranks = [IndexBuilder(16, settings, "cpu"), IndexBuilder(16, settings, "cpu")]
    ranks[0].update(lat[:60], pos[:60])
    ranks[1].update(lat[60:], pos[60:])
    _, order = top_k_first_kept(torch.cat([r.top_vals for r in ranks], dim=1), 5)  # as _merge_ranks merges them
    assert torch.equal(torch.cat([r.top_pos for r in ranks], dim=1).gather(1, order), want_pos)
    vals, cols = top_k_first_kept(torch.tensor([[-1.0, 2.0, 2.0, float("-inf"), 0.0, -1.0, -0.5]]), 6)
    assert vals.tolist() == [[2.0, 2.0, 0.0, -0.5, -1.0, -1.0]] and cols.tolist() == [[1, 2, 4, 6, 0, 5]]


def test_running_out_of_memory_halves_the_documents_per_forward_and_loses_nothing(gemma2, loaded, tmp_path, monkeypatch):
    settings = IndexSettings(top_k=4, batch_size=8)
    whole = build_index(gemma2, loaded, TEXTS, tmp_path / "whole", settings=settings, progress=False)
    original = ActivationCollector.run
    sizes = []

    def small_memory(self, batch, *args, **kwargs):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, batch, *args, **kwargs)

    monkeypatch.setattr(ActivationCollector, "run", small_memory)
    with pytest.warns(UserWarning, match="out of CPU memory") as caught:
        halved = build_index(gemma2, loaded, TEXTS, tmp_path / "halved", settings=settings, progress=False)
    assert [str(w.message) for w in caught] == [f"out of CPU memory with {n} documents per forward: going on with {n // 2}"
                                                for n in (8, 4)]  # one line per halving
    assert sizes[:3] == [8, 4, 2] and set(sizes[3:]) <= {1, 2}  # halved for good, not retried at 8 every batch
    for name in ("tokens", "doc_start"):
        assert torch.equal(getattr(whole, name), getattr(halved, name)), name
    # 2 documents per forward instead of 8: other matmul shapes, so the values agree to rounding and the counts
    # but for latents that rounding can move across an edge (tests/tolerance.py)
    uncertain = _uncertain(gemma2, loaded, whole.edges)
    _assert_same_counts(halved, whole, uncertain, "halved")
    _assert_same_top(gemma2, loaded, halved, whole, uncertain, "halved")

    def no_memory(self, batch, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(ActivationCollector, "run", no_memory)
    with pytest.warns(UserWarning), pytest.raises(InputError, match="out of CPU memory indexing a single document"):
        build_index(gemma2, loaded, TEXTS, tmp_path / "none", settings=settings, progress=False)
    assert not (tmp_path / "none" / "manifest.json").exists()  # no hook is left either: see conftest


def test_documents_per_batch_follow_the_setting_the_device_and_the_free_memory(gemma2, loaded):
    from saetui.sae.index import docs_per_batch, estimate_docs

    assert docs_per_batch(gemma2, loaded, TEXTS, IndexSettings(batch_size=5)) == 5
    assert docs_per_batch(gemma2, loaded, TEXTS, IndexSettings()) == 16  # CPU
    sizes = [estimate_docs(gemma2, 16384, 128, free) for free in (0, 2**20, 2**26, 2**30, 2**36, 2**40)]
    assert sizes == sorted(sizes) and sizes[0] == 1 and sizes[-1] == 512
    assert all(s & (s - 1) == 0 for s in sizes)  # powers of two
    assert estimate_docs(gemma2, 16384, 1024, 2**30) < estimate_docs(gemma2, 16384, 128, 2**30)  # longer documents, fewer


def test_the_default_index_of_a_local_sae_is_keyed_by_where_it_is_not_how_it_was_typed(tmp_path, monkeypatch):
    """`--sae ./saes/l6` in two folders (two SAEs) shared one index and its labels; the same SAE typed as
    `saes/l6` or by its absolute path found none. A Hub id or registry spec is keyed as it is."""
    from types import SimpleNamespace

    from saetui.sae.index import default_index_dir

    for folder in ("a", "b"):
        (tmp_path / folder / "saes" / "l6").mkdir(parents=True)
        (tmp_path / folder / "model").mkdir()

    def where(model: str, sae: str) -> object:
        return default_index_dir(SimpleNamespace(name=model), SimpleNamespace(spec=sae))

    monkeypatch.chdir(tmp_path / "a")
    in_a = where("./model", "./saes/l6")
    assert where("model", "saes/l6@blocks.1.hook_resid_post") != in_a  # another hook: another SAE
    assert where(str(tmp_path / "a" / "model"), "saes/l6") == in_a == where("./model", str(tmp_path / "a/saes/l6"))
    hub = where("google/gemma-2-2b", "gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical")
    monkeypatch.chdir(tmp_path / "b")
    assert where("./model", "./saes/l6") != in_a
    assert where("google/gemma-2-2b", "gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical") == hub


def test_a_damaged_index_is_skipped_with_a_notice_naming_it(tmp_path):
    """A garbage manifest (or truncated weights) in the index folder was skipped unseen: search said 'no feature
    index or labels' and no more. It is named, with why and what rebuilds it; another SAE's index stays quiet."""
    from saetui import demo
    from saetui.files import take_notices
    from saetui.sae.index import find_index
    from saetui.session import Session

    s = Session()
    s.load()
    damaged = tmp_path / "idx"
    damaged.mkdir()
    (damaged / "manifest.json").write_text("{not json")
    take_notices()
    found = find_index(s.model, s.sae("demo"), [damaged, *demo.index_places()])
    assert found is not None and found.manifest["sae"] == s.sae("demo").spec  # the shipped one, after it
    (said,) = take_notices()
    assert said.startswith(f"corrupt feature index at {damaged}") and "saetui index --resume" in said
