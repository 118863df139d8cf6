"""`saetui analyze` / `saetui saes`: the JSON contract and one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest
import torch

from saetui.cli import main
from saetui.sae.analyzer import SAEAnalyzer
from saetui.sae.manager import SAEManager


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_analyze_json_contract(capsys, gemma2, gemma2_dir, sae_dir):
    code, out, err = run(capsys, "analyze", "--model", str(gemma2_dir), "--sae", str(sae_dir), "--prompt", "The cat sat", "--top-k", "4", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [set(t) for t in data["tokens"]] == [{"index", "id", "text", "special"}] * len(data["tokens"])
    assert data["tokens"][0]["special"] is True
    (sae,) = data["saes"]
    assert {"name", "hook", "d_sae", "per_token", "top_features"} <= set(sae)
    assert sae["hook"] == "blocks.1.hook_resid_post" and sae["d_sae"] == 256
    assert len(sae["per_token"]) == len(data["tokens"])
    # Same numbers as the Python API.
    manager = SAEManager(gemma2)
    manager.load(str(sae_dir))
    api = SAEAnalyzer(gemma2, manager).analyze("The cat sat", top_k=4).to_dict()
    assert sae["per_token"] == api["saes"][0]["per_token"]
    assert sae["top_features"] == api["saes"][0]["top_features"]
    for feats in sae["per_token"]:
        assert len(feats) <= 4 and [a for _, a in feats] == sorted((a for _, a in feats), reverse=True)
    for f, a, i in sae["top_features"]:
        assert not data["tokens"][i]["special"] and a > 0


def test_analyze_text_output(capsys, gemma2_dir, sae_dir):
    code, out, _ = run(capsys, "analyze", "--model", str(gemma2_dir), "--sae", str(sae_dir), "--prompt", "Hi there")
    assert code == 0 and "blocks.1.hook_resid_post" in out and "'<bos>'" in out


def test_long_prompt_is_truncated_with_a_warning(capsys, gemma2, gemma2_dir, sae_dir):
    code, out, err = run(capsys, "analyze", "--model", str(gemma2_dir), "--sae", str(sae_dir), "--prompt", "word " * 400, "--json")
    assert code == 0
    data = json.loads(out)
    full = len(gemma2.tokenizer("word " * 400, add_special_tokens=True)["input_ids"])
    assert len(data["tokens"]) == 128 < full
    assert data["meta"]["cut"] == {"kept": 128, "of": full}  # said in the JSON too, for scripts
    assert err.count("\n") == 1 and err.startswith("saetui: warning:") and f"prompt cut to its first 128 of {full} tokens" in err


def test_a_prompt_that_fits_says_nothing_of_a_cut(capsys, gemma2_dir, sae_dir):
    code, out, err = run(capsys, "analyze", "--model", str(gemma2_dir), "--sae", str(sae_dir), "--prompt", "word " * 10, "--json")
    assert code == 0 and "cut" not in json.loads(out)["meta"] and err == ""


def _bad_sae(tmp_path, make_sae, kind):
    if kind == "narrow":
        make_sae(32, 64, "blocks.1.hook_resid_post").save_model(tmp_path / kind)
    elif kind == "deep":
        make_sae(64, 64, "blocks.7.hook_resid_post").save_model(tmp_path / kind)
    elif kind == "nan":
        sae = make_sae(64, 64, "blocks.1.hook_resid_post")
        with torch.no_grad():
            sae.b_enc[0] = float("inf")
        sae.save_model(tmp_path / kind)
    elif kind == "badcfg":
        make_sae(64, 64, "blocks.1.hook_resid_post").save_model(tmp_path / kind)
        (tmp_path / kind / "cfg.json").write_text('{"d_in": 64,')
    elif kind == "badweights":
        make_sae(64, 64, "blocks.1.hook_resid_post").save_model(tmp_path / kind)
        (tmp_path / kind / "sae_weights.safetensors").write_bytes(b"nope")
    return str(tmp_path / kind)


@pytest.mark.parametrize(
    "case, pattern",
    [
        ("unknown-model", "HF_HUB_OFFLINE is set and model nobody/missing-model is not complete in the cache.*"
                          "saetui download --model nobody/missing-model"),
        ("narrow", "expects d_in=32"),
        ("deep", "layer 7 out of range"),
        ("unknown-release", "unknown SAE release 'gemma-scope-2b-pt-res-canonicl'; did you mean"),
        ("unknown-id", "unknown sae_id 'layer_99/width_16k/canonical'"),
        ("empty-prompt", "empty prompt"),
        ("badcfg", "corrupt SAE config"),
        ("badweights", "corrupt SAE at"),
        ("nan", "non-finite values"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, pattern, capsys, tmp_path, gemma2_dir, sae_dir, make_sae):
    model, sae, prompt = str(gemma2_dir), str(sae_dir), "The cat"
    if case == "unknown-model":
        model = "nobody/missing-model"
    elif case == "unknown-release":
        sae = "gemma-scope-2b-pt-res-canonicl/layer_1/width_16k/canonical"
    elif case == "unknown-id":
        sae = "gemma-scope-2b-pt-res-canonical/layer_99/width_16k/canonical"
    elif case == "empty-prompt":
        prompt = "   "
    elif case in ("narrow", "deep", "nan", "badcfg", "badweights"):
        sae = _bad_sae(tmp_path, make_sae, case)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, out, err = run(capsys, "analyze", "--model", model, "--sae", sae, "--prompt", prompt, "--json")
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("saetui: error: "), err
    assert __import__("re").search(pattern, lines[0]), lines[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_saes_lists_the_registry_offline(capsys):
    code, out, _ = run(capsys, "saes", "--model", "google/gemma-2-2b", "--json")
    assert code == 0
    entries = json.loads(out)
    spec = "gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical"
    (entry,) = [e for e in entries if e["spec"] == spec]
    assert entry["hook"] == "blocks.12.hook_resid_post" and entry["width"] == 16384
    assert entry["neuronpedia_id"] == "gemma-2-2b/12-gemmascope-res-16k"
    code, out, err = run(capsys, "saes", "--model", "no-such-model")
    assert code == 2 and out == "" and "no registry SAEs" in err


def test_import_saetui_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, saetui; assert 'torch' not in sys.modules, 'torch imported'; assert saetui.SAEManager.__name__ == 'SAEManager'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_steer_json_compare_and_sweep_match_the_api(capsys, gemma2, gemma2_dir, sae_dir):
    from saetui.steering.generate import SteeringEngine
    from saetui.steering.spec import SteeringSpec

    code, out, err = run(capsys, "steer", "--model", str(gemma2_dir), "--sae", str(sae_dir), "--prompt", "The cat",
                         "--feature", "5:8", "--compare", "--sweep", "0,4", "--max-new-tokens", "6", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"prompt", "specs", "model", "saes", "settings", "baseline", "variants"}
    assert data["specs"][0]["feature"] == 5 and data["specs"][0]["mode"] == "add"
    # what runs it again: the model, each SAE the specs name by what it was loaded from, the decoding settings
    assert data["settings"] == {"max_new_tokens": 6, "temperature": 0.0, "top_p": 1.0, "seed": 0, "use_cache": True}
    manager = SAEManager(gemma2)
    loaded = manager.load(str(sae_dir))
    assert data["model"] == str(gemma2_dir) and data["saes"] == {loaded.name: loaded.spec}
    engine = SteeringEngine(gemma2, manager)
    (base,) = engine.run("The cat", [[]], max_new_tokens=6)
    assert data["baseline"]["token_ids"] == base.token_ids
    assert data["variants"][0]["token_ids"] == base.token_ids  # coefficient 0 changes nothing
    (four,) = engine.run("The cat", [[SteeringSpec(5, 4.0)]], max_new_tokens=6)
    variant = data["variants"][1]
    assert {k: variant[k] for k in ("coefficient", "text", "token_ids")} == {"coefficient": 4.0, "text": four.text, "token_ids": four.token_ids}
    # what steering changed: each token's log-probability, and the KL to the unsteered model (0 at coefficient 0)
    assert variant["logprobs"] == pytest.approx(four.logprobs, abs=1e-5)
    assert variant["kl"] == pytest.approx(engine.kl("The cat", [[SteeringSpec(5, 4.0)]], [four.token_ids])[0], abs=1e-6)
    assert data["variants"][0]["kl"] == [0.0] * len(data["variants"][0]["token_ids"]) and "kl" not in data["baseline"]


def test_steer_streams_text(capsys, gemma2, gemma2_dir, sae_dir):
    code, out, _ = run(capsys, "steer", "--model", str(gemma2_dir), "--sae", str(sae_dir), "--prompt", "The cat",
                       "--feature", "1/5:8:clamp", "--max-new-tokens", "5", "--temperature", "0.7", "--seed", "3")
    assert code == 0 and out.startswith("The cat") and out.endswith("\n")


@pytest.mark.parametrize(
    "feature, extra, pattern",
    [
        ("999:1", [], "feature 999 out of range"),
        ("nope/5:1", [], "no loaded SAE named 'nope'"),
        ("5:nan", [], "finite number"),
        ("5:1", ["--max-new-tokens", "0"], "max new tokens must be a positive integer"),
        ("5:1", ["--sweep", "1,x"], "--sweep takes numbers"),
        ("five:1", [], "cannot read feature spec"),
    ],
)
def test_steer_bad_input(capsys, gemma2_dir, sae_dir, feature, extra, pattern):
    code, out, err = run(capsys, "steer", "--model", str(gemma2_dir), "--sae", str(sae_dir), "--prompt", "The cat", "--feature", feature, *extra)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and pattern in lines[0]


def test_a_demo_sae_is_named_by_its_name_as_the_help_says(capsys, tmp_path):
    """`index --help`: "--sae SPEC the SAE to index (default: the demo's early-layer SAE, demo)"; naming a
    demo SAE loaded nothing (it is not a path or a registry id) and failed."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("Anna has a red cat.\nThe capital of France is Paris.\n")
    for name, spec in (("demo-late", "saetui-demo-late-sae"), ("demo", "saetui-demo-sae")):
        code, out, err = run(capsys, "index", "--corpus", str(corpus), "--sae", name, "--out", str(tmp_path / name))
        assert code == 0, err
        assert json.loads(out)["sae"] == spec


def test_analyze_predictions_print_without_json_too(capsys):
    """`analyze --predictions N` prints each token's next-token guesses in the text form, as the JSON has them."""
    argv = ["analyze", "--prompt", "The capital of France is", "--predictions", "2", "--top-k", "3"]
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    data = json.loads(out)
    code, text, err = run(capsys, *argv)
    assert code == 0, err
    lines = text.split("== next-token predictions\n")[1].splitlines()
    assert len(lines) == len(data["tokens"]) == len(data["predictions"])
    for line, guesses in zip(lines, data["predictions"]):
        assert all(f"{t!r} {p:.1%}" in line for _, t, p in guesses)


def test_search_text_keeps_its_columns_when_hits_come_from_several_saes(capsys):
    """`demo/3` and `demo-late/101` in a 7-wide column: every hit after a longer name stood out of line."""
    code, out, _ = run(capsys, "search", "red", "--limit", "12")
    lines = out.splitlines()
    assert code == 0 and len({line.split("/")[0].strip() for line in lines}) == 2  # hits of both SAEs
    scores = {line.index(f"{float(line.split()[1]):7.2f}") for line in lines}
    assert len(scores) == 1, out


def test_an_sae_given_twice_is_loaded_once_with_a_warning(capsys, gemma2_dir, sae_dir):
    """`--sae ./s --sae /abs/s` loaded it again as `s#2`, and a bare feature number then asked which one."""
    code, out, err = run(capsys, "analyze", "--model", str(gemma2_dir), "--sae", str(sae_dir), "--sae",
                         f"{sae_dir}/../{sae_dir.name}", "--prompt", "The cat sat", "--json")
    assert code == 0 and [s["name"] for s in json.loads(out)["saes"]] == [sae_dir.name]
    assert err.splitlines() == [f"saetui: warning: SAE {sae_dir}/../{sae_dir.name} is given twice (as {sae_dir}): loaded once"]
