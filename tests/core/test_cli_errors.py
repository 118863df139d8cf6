"""Every CLI mistake is one line: `saetui: error: ...` on stderr, exit code 2, nothing on stdout.

Most cases fail before any model loads; the few that need a model use the bundled demo (about 1 MB).
Placeholders in argv: {tmp} is a fresh folder, {corpus} a small corpus file, {file} an existing file.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from saetui.cli import build_parser, main

P = ["--prompt", "The cat"]
STEER = ["steer", *P, "--feature", "demo/5:1"]  # the demo has two SAEs: a feature names its SAE
INDEX = ["index", "--corpus", "{corpus}"]
SNAP = ["snapshot", *P, "--out", "{tmp}/s.svg"]

CASES: list[tuple[str, list[str], str]] = [
    # the bare app's arguments
    ("app-unknown-option", ["--nope"], "unrecognized arguments"),
    ("app-sae-without-value", ["--sae"], "expected one argument"),
    ("app-model-without-value", ["--model"], "expected one argument"),
    ("app-sae-needs-model", ["--sae", "x"], "--sae needs --model"),
    ("app-unknown-command", ["bogus"], "invalid choice"),
    ("app-stray-argument", ["saes", "extra"], "unrecognized arguments"),
    # analyze
    ("analyze-no-prompt", ["analyze"], "required: --prompt"),
    ("analyze-blank-prompt", ["analyze", "--prompt", "   "], "empty prompt"),
    ("analyze-top-k-negative", ["analyze", *P, "--top-k", "-1"], "--top-k: must be a positive"),
    ("analyze-top-k-zero", ["analyze", *P, "--top-k", "0"], "--top-k: must be a positive"),
    ("analyze-top-k-word", ["analyze", *P, "--top-k", "abc"], "--top-k"),
    ("analyze-top-k-float", ["analyze", *P, "--top-k", "1.5"], "--top-k"),
    ("analyze-top-k-unicode-digit", ["analyze", *P, "--top-k", "²"], "--top-k"),
    ("analyze-top-k-arabic-digit", ["analyze", *P, "--top-k", "٣"], "--top-k"),
    ("analyze-predictions-negative", ["analyze", *P, "--predictions", "-1"], "--predictions: must be a whole number >= 0"),
    ("analyze-device-junk", ["analyze", *P, "--device", "junk"], "unknown device 'junk'"),
    ("analyze-device-cuda-index", ["analyze", *P, "--device", "cuda:99"], "cuda:99"),
    ("analyze-device-cpu-index", ["analyze", *P, "--device", "cpu:x"], "unknown device"),
    ("analyze-dtype-junk", ["analyze", *P, "--dtype", "junk"], "unknown dtype 'junk'"),
    ("analyze-dtype-half", ["analyze", *P, "--dtype", "half"], "unknown dtype"),
    ("analyze-dtype-int8", ["analyze", *P, "--dtype", "int8"], "unknown dtype"),
    ("analyze-demo-refuses-fp16", ["analyze", *P, "--dtype", "float16"], "demo runs in float32 only"),
    ("analyze-demo-refuses-bf16", ["analyze", *P, "--dtype", "bf16"], "demo runs in float32 only"),
    ("analyze-invalid-utf8", ["analyze", "--prompt", "caf\udcc3\udca9 \udcff"], "invalid UTF-8 byte 0xc3"),
    ("analyze-lone-surrogate", ["analyze", "--prompt", "a\ud800b"], "lone surrogate U+D800"),
    ("analyze-model-without-sae", ["analyze", *P, "--model", "somewhere"], "--sae is required with --model"),
    ("analyze-sae-missing-absolute-path", ["analyze", *P, "--sae", "{tmp}/no-sae"], "no SAE at"),
    ("analyze-sae-missing-relative-path", ["analyze", *P, "--sae", "./no-sae-here"], "no SAE at"),
    ("analyze-sae-missing-npz", ["analyze", *P, "--sae", "params.npz@blocks.1.hook_resid_post"], "no SAE at"),
    ("analyze-unknown-option", ["analyze", *P, "--topk", "3"], "unrecognized arguments"),
    # steer
    ("steer-no-feature", ["steer", *P], "required: --feature"),
    ("steer-blank-prompt", ["steer", "--prompt", "", "--feature", "5:1"], "empty prompt"),
    ("steer-invalid-utf8", ["steer", "--prompt", "\udcff", "--feature", "5:1"], "invalid UTF-8 byte 0xff"),
    ("steer-unicode-digit-feature", ["steer", *P, "--feature", "²:4"], "ASCII digits"),
    ("steer-arabic-digit-feature", ["steer", *P, "--feature", "٣:4"], "ASCII digits"),
    ("steer-word-feature", ["steer", *P, "--feature", "x:1"], "cannot read feature spec"),
    ("steer-negative-feature", ["steer", *P, "--feature=-5:1"], "cannot read feature spec"),
    ("steer-no-coefficient", ["steer", *P, "--feature", "5"], "cannot read feature spec"),
    ("steer-too-many-parts", ["steer", *P, "--feature", "5:1:add:x"], "cannot read feature spec"),
    ("steer-bad-mode", ["steer", *P, "--feature", "5:1:zap"], "steering mode must be one of"),
    ("steer-word-coefficient", ["steer", *P, "--feature", "5:lots"], "is not a number"),
    ("steer-nan-coefficient", ["steer", *P, "--feature", "5:nan"], "finite number"),
    ("steer-inf-coefficient", ["steer", *P, "--feature", "5:inf"], "finite number"),
    ("steer-huge-coefficient", ["steer", *P, "--feature", "549:1e38"], "too large"),
    ("steer-huge-negative-coefficient", ["steer", *P, "--feature", "5:-2e4"], "too large"),
    ("steer-scope-newline", [*STEER, "--scope", "all\n"], "scope must be"),
    ("steer-scope-junk", [*STEER, "--scope", "middle"], "scope must be"),
    ("steer-scope-negative", [*STEER, "--scope=-1:5"], "scope must be"),
    ("steer-scope-reversed", [*STEER, "--scope", "5:2"], "is empty"),
    ("steer-scope-empty", [*STEER, "--scope", "3:3"], "is empty"),
    ("steer-scope-unicode", [*STEER, "--scope", "²:5"], "scope must be"),
    ("steer-max-new-tokens-zero", [*STEER, "--max-new-tokens", "0"], "max new tokens must be a positive integer"),
    ("steer-max-new-tokens-negative", [*STEER, "--max-new-tokens", "-1"], "max new tokens must be a positive integer"),
    ("steer-max-new-tokens-word", [*STEER, "--max-new-tokens", "many"], "--max-new-tokens"),
    ("steer-temperature-tiny", [*STEER, "--temperature", "1e-300"], "temperature must be 0 (greedy) or at least"),
    ("steer-temperature-negative", [*STEER, "--temperature", "-1"], "temperature must be >= 0"),
    ("steer-temperature-nan", [*STEER, "--temperature", "nan"], "--temperature: must be a finite number"),
    ("steer-temperature-inf", [*STEER, "--temperature", "inf"], "--temperature: must be a finite number"),
    ("steer-temperature-word", [*STEER, "--temperature", "hot"], "--temperature: must be a number"),
    ("steer-top-p-zero", [*STEER, "--top-p", "0"], "top-p must be in"),
    ("steer-top-p-above-one", [*STEER, "--top-p", "1.5"], "top-p must be in"),
    ("steer-top-p-nan", [*STEER, "--top-p", "nan"], "--top-p"),
    ("steer-seed-65-bits", [*STEER, "--seed", str(2**64)], "--seed: must be a whole number from 0 to 2**64-1"),
    ("steer-seed-huge", [*STEER, "--seed", "9" * 40], "--seed"),
    ("steer-seed-negative", [*STEER, "--seed", "-1"], "--seed"),
    ("steer-seed-float", [*STEER, "--seed", "1e3"], "--seed"),
    ("steer-sweep-word", [*STEER, "--sweep", "1,x"], "--sweep takes numbers"),
    ("steer-sweep-empty", [*STEER, "--sweep", ","], "--sweep takes finite numbers"),
    ("steer-sweep-nan", [*STEER, "--sweep", "1,nan"], "--sweep takes finite numbers"),
    ("steer-sweep-huge", [*STEER, "--sweep", "1,1e38"], "within"),
    ("steer-device-junk", [*STEER, "--device", "gpu"], "unknown device 'gpu'"),
    ("steer-demo-refuses-fp16", [*STEER, "--dtype", "fp16"], "demo runs in float32 only"),
    ("steer-feature-out-of-range", ["steer", *P, "--feature", "demo/99999:1"], "feature 99999 out of range"),
    ("steer-feature-without-sae-on-two", ["steer", *P, "--feature", "5:1"], "several SAEs are loaded, name one of: demo, demo-late"),
    ("steer-unknown-sae", ["steer", *P, "--feature", "nope/5:1"], "no loaded SAE named 'nope'"),
    # index
    ("index-no-corpus", ["index"], "required: --corpus"),
    ("index-missing-corpus", ["index", "--corpus", "{tmp}/nothing.txt"], "no dataset file at"),
    ("index-corpus-is-folder", ["index", "--corpus", "{tmp}"], "no dataset file at"),
    ("index-ctx-negative", [*INDEX, "--ctx", "-1"], "--ctx: must be a positive"),
    ("index-ctx-zero", [*INDEX, "--ctx", "0"], "--ctx"),
    ("index-max-tokens-negative", [*INDEX, "--max-tokens", "-1"], "--max-tokens"),
    ("index-max-tokens-zero", [*INDEX, "--max-tokens", "0"], "--max-tokens"),
    ("index-batch-size-zero", [*INDEX, "--batch-size", "0"], "--batch-size"),
    ("index-top-k-negative", [*INDEX, "--top-k", "-3"], "--top-k"),
    ("index-top-k-unicode", [*INDEX, "--top-k", "²"], "--top-k"),
    ("index-out-is-a-file", [*INDEX, "--out", "{file}"], "is a file, not a folder"),
    ("index-out-under-a-file", [*INDEX, "--out", "{file}/sub/index"], "is a file, not a folder"),
    ("index-out-unwritable", [*INDEX, "--out", "{readonly}/index"], "cannot write in"),
    ("index-dtype-junk", [*INDEX, "--dtype", "fp8"], "unknown dtype"),
    ("index-device-junk", [*INDEX, "--device", "tpu"], "unknown device"),
    # search
    ("search-no-query", ["search"], "required: query"),
    ("search-empty-query", ["search", "  "], "empty query"),
    ("search-limit-negative", ["search", "cat", "--limit", "-1"], "--limit: must be a positive"),
    ("search-limit-zero", ["search", "cat", "--limit", "0"], "--limit"),
    ("search-limit-word", ["search", "cat", "--limit", "all"], "--limit"),
    ("search-unicode-digit", ["search", "²"], "ASCII digits"),
    ("search-invalid-utf8", ["search", "\udcff"], "invalid UTF-8"),
    ("search-device-junk", ["search", "cat", "--device", "junk"], "unknown device"),
    ("search-out-of-range", ["search", "99999"], "feature 99999 out of range"),
    # labels
    ("labels-no-file", ["labels"], "required: file"),
    ("labels-missing-file", ["labels", "{tmp}/none.json"], "no labels file"),
    ("labels-dtype-junk", ["labels", "{file}", "--dtype", "junk"], "unknown dtype"),
    ("labels-index-missing", ["labels", "{labels}", "--index", "{tmp}/no-index"], "no feature index at"),
    ("labels-index-is-a-file", ["labels", "{labels}", "--index", "{file}"], "feature index at"),
    # snapshot
    ("snapshot-no-out", ["snapshot", *P], "required: --out"),
    ("snapshot-no-prompt", ["snapshot", "--out", "{tmp}/s.svg"], "required: --prompt"),
    ("snapshot-blank-prompt", ["snapshot", "--prompt", " ", "--out", "{tmp}/s.svg"], "empty prompt"),
    ("snapshot-invalid-utf8", ["snapshot", "--prompt", "\udcff", "--out", "{tmp}/s.svg"], "invalid UTF-8"),
    ("snapshot-size-word", [*SNAP, "--size", "big"], "--size must be WIDTHxHEIGHT"),
    ("snapshot-size-half", [*SNAP, "--size", "120x"], "--size must be WIDTHxHEIGHT"),
    ("snapshot-size-zero", [*SNAP, "--size", "0x0"], "width must be"),
    ("snapshot-size-tiny", [*SNAP, "--size", "10x5"], "width must be"),
    ("snapshot-size-huge", [*SNAP, "--size", "99999x99999"], "width must be"),
    ("snapshot-size-unicode", [*SNAP, "--size", "²0x40"], "--size must be WIDTHxHEIGHT"),
    ("snapshot-out-missing-folder", ["snapshot", *P, "--out", "{tmp}/missing/s.svg"], "does not exist"),
    ("snapshot-out-is-folder", ["snapshot", *P, "--out", "{tmp}"], "is a folder"),
    ("snapshot-out-unwritable", ["snapshot", *P, "--out", "{readonly}/s.svg"], "cannot write in"),
    ("snapshot-bad-feature", [*SNAP, "--feature", "²:4"], "ASCII digits"),
    ("snapshot-app-sae-needs-model", [*SNAP, "--app-sae", "x"], "--app-sae needs --app-model"),
    ("snapshot-unknown-feature", [*SNAP, "--feature", "99999:1"], "feature 99999 out of range"),
    ("snapshot-missing-model", [*SNAP, "--app-model", "nobody/missing-model", "--app-sae", "x"], "cannot load model"),
    # saes
    ("saes-unknown-model", ["saes", "--model", "no-such-model"], "no registry SAEs"),
    ("saes-model-without-value", ["saes", "--model"], "expected one argument"),
]


@pytest.fixture()
def places(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat\n", encoding="utf-8")
    labels = tmp_path / "labels.csv"
    labels.write_text("feature,label\n1,cats\n", encoding="utf-8")
    file = tmp_path / "afile"
    file.write_text("x", encoding="utf-8")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    # root writes in any folder: /proc takes no new files from anyone
    unwritable = "/proc" if os.access(readonly, os.W_OK) else str(readonly)
    yield {"tmp": str(tmp_path), "corpus": str(corpus), "file": str(file), "readonly": unwritable,
           "labels": str(labels)}
    readonly.chmod(0o700)


def test_at_least_80_cases_over_every_command():
    assert len(CASES) >= 80 and len({name for name, _, _ in CASES}) == len(CASES)
    commands = {argv[0] for _, argv, _ in CASES if not argv[0].startswith("-")}
    assert {"analyze", "steer", "index", "search", "labels", "snapshot", "saes"} <= commands


@pytest.mark.parametrize("name, argv, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2(name, argv, pattern, places, capsys):
    argv = [a.format(**places) if "{" in a else a for a in argv]
    before = sorted(p.name for p in os.scandir(places["tmp"]))
    code = main(argv)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert (code, out) == (2, ""), (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("saetui: error: "), err
    assert pattern in lines[0], lines[0]
    assert sorted(p.name for p in os.scandir(places["tmp"])) == before  # nothing written


def test_unexpected_exception_is_one_line_exit_1_with_a_log(monkeypatch, capsys, tmp_path):
    import saetui.cli as cli

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def boom(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(cli, "cmd_saes", boom)
    code = main(["saes"])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 1 and out == "" and len(lines) == 1, err
    assert lines[0].startswith("saetui: error: internal error: ZeroDivisionError: division by zero second line")
    log = re.search(r"details in (\S+\.log)", lines[0])
    assert log, lines[0]
    assert "Traceback" in open(log.group(1), encoding="utf-8").read()
    monkeypatch.setenv("SAETUI_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["saes"])


def test_help_still_prints_and_exits_0(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["steer", "--help"])
    assert exc.value.code == 0 and "--max-new-tokens" in capsys.readouterr().out


def test_defaults_come_from_the_settings_classes():
    from saetui.sae.index import IndexSettings
    from saetui.steering.generate import GenerationSettings

    parser = build_parser()
    steer = parser.parse_args(["steer", *P, "--feature", "5:1"])
    gen = GenerationSettings()
    assert (steer.max_new_tokens, steer.temperature, steer.top_p, steer.seed) == (gen.max_new_tokens, gen.temperature, gen.top_p, gen.seed)
    index = parser.parse_args(["index", "--corpus", "x"])
    idx = IndexSettings()
    assert (index.top_k, index.batch_size, index.ctx, index.max_tokens) == (idx.top_k, idx.batch_size, idx.ctx, idx.max_tokens)


def test_fair_successes(capsys):
    """Odd but valid: aliases and spellings that are accepted."""
    parser = build_parser()
    assert parser.parse_args(["analyze", *P, "--dtype", "BF16"]).dtype == "bfloat16"
    assert parser.parse_args(["analyze", *P, "--dtype", "fp32"]).dtype == "float32"
    assert parser.parse_args(["analyze", *P, "--device", "CPU"]).device == "cpu"
    assert parser.parse_args(["steer", *P, "--feature", "5:1", "--seed", str(2**64 - 1)]).seed == 2**64 - 1
    assert parser.parse_args(["steer", *P, "--feature", "5:1", "--temperature", "0"]).temperature == 0.0


def test_max_new_tokens_beyond_the_context_is_capped_with_one_warning(capsys):
    from saetui import demo

    model, _ = demo.load_demo()
    context = model.context_length
    code = main([*STEER, "--max-new-tokens", str(context * 100), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("saetui: warning: --max-new-tokens") and "capped" in lines[0]
    n_prompt = len(model.tokenizer("The cat", add_special_tokens=True)["input_ids"])
    assert len(json.loads(out)["steered"]["token_ids"]) <= context - n_prompt


def test_steer_compare_prints_each_row_under_its_heading(capsys):
    code = main([*STEER, "--compare", "--max-new-tokens", "3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("--- steered ---\nThe cat") and "\n--- baseline ---\nThe cat" in out


def test_undecodable_argv_bytes_are_refused_in_one_line(tmp_path):
    """From a real command line, invalid UTF-8 arrives as lone surrogates (surrogateescape)."""
    import subprocess
    import sys

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "saetui.cli", "analyze", "--prompt", b"caf\xff"],
                          capture_output=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.decode().splitlines() == [
        "saetui: error: the prompt has invalid UTF-8 byte 0xff at character 3: give UTF-8 text"]


def test_snapshot_of_an_app_error_is_an_error_not_a_picture(monkeypatch, capsys, tmp_path):
    from saetui.sae.analyzer import SAEAnalyzer

    def broken(self, *args, **kwargs):
        raise RuntimeError("analysis broke")

    monkeypatch.setattr(SAEAnalyzer, "analyze", broken)
    code = main(["snapshot", *P, "--out", str(tmp_path / "s.svg"), "--size", "80x24"])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert (code, out) == (2, ""), err
    assert len(lines) == 1 and lines[0].startswith("saetui: error: the app showed an error"), err
    assert "analysis broke" in lines[0] and not (tmp_path / "s.svg").exists()
