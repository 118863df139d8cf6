"""ActivationCache: shards equal the collector, reads are memory-mapped, a killed build resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from saetui.activations.cache import ActivationCache, read_dataset
from saetui.activations.collector import ActivationCollector
from saetui.errors import InputError
from tests.tolerance import assert_close_reduction, path_length

HOOKS = ["blocks.0.hook_resid_post", "blocks.2.hook_mlp_out"]
TEXTS = [f"The cat number {i} sat on {'the ' * (i % 4)}mat" for i in range(23)]


def test_build_matches_the_collector_and_reads_memory_mapped(gemma2, tmp_path):
    cache = ActivationCache(tmp_path / "c").build(gemma2, TEXTS, HOOKS, batch_size=4, prompts_per_shard=10, progress=False)
    manifest = cache.manifest
    assert manifest["complete"] and [s["prompts"] for s in manifest["shards"]] == [[0, 10], [10, 20], [20, 23]]
    acts = cache.activations(HOOKS[1])
    assert all(isinstance(a, np.memmap) for a in acts)
    tokens, offsets = np.concatenate(cache.tokens()), cache.offsets()
    expected = ActivationCollector(gemma2).collect(TEXTS[10:20], HOOKS[1])
    shard = acts[1]
    for j, ids in enumerate(expected.token_ids):
        start, end = offsets[1][j], offsets[1][j + 1]
        # 4 prompts per forward vs 10: other matmul shapes, so rounding apart (tests/tolerance.py)
        want = expected[HOOKS[1]][j]
        assert_close_reduction(torch.from_numpy(np.array(shard[start:end])), want, n=path_length(gemma2, HOOKS[1]), what=f"prompt {10 + j}")
        assert cache.tokens()[1][start:end].tolist() == ids
    assert len(tokens) == cache.n_tokens == sum(s["n_tokens"] for s in manifest["shards"])
    assert (tokens == 1).sum() == len(TEXTS)  # one BOS per prompt
    assert (tokens == 0).sum() == 0  # no padding stored


def test_killed_build_resumes_to_the_same_result(gemma2, tmp_path, monkeypatch):
    whole = ActivationCache(tmp_path / "whole").build(gemma2, TEXTS, HOOKS, batch_size=4, prompts_per_shard=8, progress=False)

    calls = {"n": 0}
    original = ActivationCollector.run

    def dying(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # second batch of the second shard
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ActivationCollector, "run", dying)
    with pytest.raises(KeyboardInterrupt):
        ActivationCache(tmp_path / "resumed").build(gemma2, TEXTS, HOOKS, batch_size=4, prompts_per_shard=8, progress=False)
    partial = json.loads((tmp_path / "resumed" / "manifest.json").read_text())
    assert [s["index"] for s in partial["shards"]] == [0] and not partial["complete"]
    # A half-written file from the killed shard must not be trusted.
    (tmp_path / "resumed" / "shard_00001.tokens.npy.tmp").write_bytes(b"partial")
    monkeypatch.setattr(ActivationCollector, "run", original)
    resumed = ActivationCache(tmp_path / "resumed").build(gemma2, TEXTS, HOOKS, batch_size=4, prompts_per_shard=8, progress=False)
    assert resumed.manifest["shards"] == whole.manifest["shards"]
    for hook in HOOKS:  # the same batches of the same prompts in both builds: the same kernels, the same bits
        for a, b in zip(whole.activations(hook), resumed.activations(hook)):
            assert np.array_equal(a, b)
    for a, b in zip(whole.tokens(), resumed.tokens()):
        assert np.array_equal(a, b)


def test_other_settings_are_refused(gemma2, tmp_path):
    ActivationCache(tmp_path / "c").build(gemma2, TEXTS, HOOKS[:1], prompts_per_shard=8, progress=False)
    with pytest.raises(InputError, match="other settings"):
        ActivationCache(tmp_path / "c").build(gemma2, TEXTS[:5], HOOKS[:1], prompts_per_shard=8, progress=False)


def test_dataset_formats_and_errors(tmp_path):
    (tmp_path / "a.txt").write_text("first line\n\nsecond line\n")
    assert read_dataset(tmp_path / "a.txt") == ["first line", "second line"]
    (tmp_path / "b.jsonl").write_text('{"text": "one"}\n{"body": "two"}\n')
    with pytest.raises(InputError, match="b.jsonl:2 has no field 'text'"):
        read_dataset(tmp_path / "b.jsonl")
    (tmp_path / "c.jsonl").write_text('{"body": "x"}\n')
    assert read_dataset(tmp_path / "c.jsonl", field="body") == ["x"]
    for value, kind in (("null", "null"), ('["a", "b"]', "list"), ("3", "int"), ('{"t": 1}', "dict")):
        (tmp_path / "d.jsonl").write_text('{"text": "fine"}\n{"text": ' + value + '}\n')
        with pytest.raises(InputError, match=rf"d.jsonl:2: field 'text' is {kind}, not text"):
            read_dataset(tmp_path / "d.jsonl")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(InputError, match="has no text"):
        read_dataset(tmp_path / "empty.txt")
    with pytest.raises(InputError, match="no dataset file"):
        read_dataset(tmp_path / "missing.txt")


def test_damaged_manifests_and_unwritable_roots_are_one_line_errors(gemma2, tmp_path, monkeypatch):
    ActivationCache(tmp_path / "c").build(gemma2, TEXTS[:4], HOOKS[:1], progress=False)
    for content in (b"[]", b"{}", b"\xff\xfe", b"{not json"):
        (tmp_path / "c" / "manifest.json").write_bytes(content)
        with pytest.raises(InputError, match="corrupt cache manifest") as err:
            ActivationCache(tmp_path / "c").tokens()
        assert "\n" not in str(err.value)
    ran = {"n": 0}
    original = ActivationCollector.run

    def counting(self, *args, **kwargs):
        ran["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ActivationCollector, "run", counting)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="cannot create the cache folder .*afile"):
        ActivationCache(tmp_path / "afile").build(gemma2, TEXTS, HOOKS[:1], progress=False)
    with pytest.raises(InputError, match="cannot create the cache folder /proc"):
        ActivationCache("/proc/saetui-cache").build(gemma2, TEXTS, HOOKS[:1], progress=False)
    assert ran["n"] == 0  # refused before any forward pass


def test_temporaries_of_a_killed_writer_are_removed_on_resume(gemma2, tmp_path):
    cache = ActivationCache(tmp_path / "c").build(gemma2, TEXTS[:4], HOOKS[:1], progress=False)
    (tmp_path / "c" / ".shard_00000.tokens.npy.abc123.tmp").write_bytes(b"half")  # as a SIGKILL leaves it
    cache.build(gemma2, TEXTS[:4], HOOKS[:1], progress=False)
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.endswith(".tmp")]


def test_the_progress_bar_counts_every_token_so_far(gemma2, tmp_path, capsys):
    """Its `tokens=` was the last batch's (48, then 42 at 100%), not the running total the index's bar gives."""
    import re

    cache = ActivationCache(tmp_path / "c").build(gemma2, TEXTS, HOOKS, batch_size=4, prompts_per_shard=10, progress=True)
    shown = [int(n) for n in re.findall(r"tokens=(\d+)", capsys.readouterr().err)]
    assert shown and shown[-1] == cache.n_tokens and shown == sorted(shown)
