"""Feature circuits (saetui.sae.circuit) against brute force on tiny random models: measured ablations equal an
independent ablation (steering's ablate mode), estimates and edges equal central finite differences, faithfulness
equals an independent computation, and no hook is left after an error.

Finite differences run the model in float64, but its attention softmax stays float32 (transformers computes it
so): m carries ~1e-7 of rounding, so a step of 1e-3 gives derivatives to ~1e-4 relative (the step's own error,
~step^2, is smaller); they are compared at rel 1e-3."""

from __future__ import annotations

import pytest
import torch

from saetui.errors import InputError
from saetui.models.model import ModelWithHooks
from saetui.models.synthetic import TINY_ARCHITECTURES
from saetui.sae.circuit import CircuitSettings, Node, ablate_nodes, find_circuit
from saetui.sae.manager import SAEManager
from saetui.steering.hooks import SteeringHooks
from saetui.steering.spec import SteeringSpec, resolve
from tests.conftest import hook_ids
from tests.tolerance import assert_close_reduction, path_length

PROMPT = "The cat sat on the mat and"
EARLY, LATE = "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"


def _setup(model_dirs, make_sae, arch, dtype=torch.float32):
    model = ModelWithHooks.from_pretrained(str(model_dirs(arch)))
    model.model.to(dtype)
    saes = SAEManager(model)
    for i, hook in enumerate((EARLY, LATE)):
        sae = make_sae(model.d_model, 96, hook, seed=i)
        with torch.no_grad():
            sae.threshold.mul_(0.5)  # fire more: more nodes to check
        saes.add(sae.to(dtype), name=f"s{i}")
    return model, saes


def _target(model, prompt=PROMPT):
    with torch.inference_mode():
        logits = model.model(input_ids=model.tokenize(prompt).input_ids).logits[0, -1]
    top2 = logits.topk(2).indices.tolist()
    return top2[0], top2[1]


def _metric(model, saes, target, versus, rows):
    """m for one forward with steering `rows` (a list of resolved specs, one row), every SAE spliced (the identity)."""
    ids = model.tokenize(PROMPT).input_ids
    with SteeringHooks(model, [rows], prompt_len=ids.shape[1]), torch.no_grad():
        logits = model.model(input_ids=ids).logits[0, -1].double()
    return float(logits[target] - logits[versus])


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_measured_ablations_equal_steering_ablate_on_every_architecture(model_dirs, make_sae, arch):
    model, saes = _setup(model_dirs, make_sae, arch)
    target, versus = _target(model)
    result = find_circuit(model, list(saes), [PROMPT], target, versus, settings=CircuitSettings(nodes=20, steps=4, verify=6))
    assert result.nodes and result.full == pytest.approx(_metric(model, saes, target, versus, []), rel=1e-4, abs=1e-4)
    assert all(n.position > 0 for n in result.nodes)  # BOS is never a node
    checked = 0
    for node in result.nodes:
        if node.ablated is None or node.feature is None:
            continue
        spec = SteeringSpec(node.feature, 0.0, mode="ablate", sae=node.sae, scope=f"{node.position}:{node.position + 1}")
        want = _metric(model, saes, target, versus, [resolve(spec, saes)]) - result.full
        assert node.ablated == pytest.approx(want, rel=1e-3, abs=1e-4), node.key
        checked += 1
    assert checked >= 2
    assert result.faithfulness[-1]["score"] == pytest.approx(1.0, abs=1e-4)  # every feature node kept: the full model


def test_ablate_nodes_gives_each_top_node_its_ablated_and_a_group_what_steering_gives(model_dirs, make_sae):
    """The app's ablate key (ablate_nodes): one node alone measures what the result's `ablated` says (another batch
    shape: equal up to the rounding of a forward), several together what steering's ablate mode gives them."""
    model, saes = _setup(model_dirs, make_sae, "llama")
    target, versus = _target(model)
    result = find_circuit(model, list(saes), [PROMPT], target, versus, settings=CircuitSettings(nodes=20, steps=2, verify=8))
    n = path_length(model, f"blocks.{model.n_layers - 1}.hook_resid_post", 96) + model.d_model  # and the unembedding
    verified = [node for node in result.nodes if node.ablated is not None]
    assert len(verified) == 8
    for node in verified:
        got = ablate_nodes(model, list(saes), [PROMPT], target, versus, [node], full=result.full)
        scale = max(abs(result.full), abs(result.full + node.ablated))
        assert_close_reduction(torch.tensor(got), torch.tensor(node.ablated), n=n, scale=scale, dtype=torch.float32,
                               what=node.key)
    features = [node for node in result.nodes if node.feature is not None][:2]
    specs = [resolve(SteeringSpec(f.feature, 0.0, mode="ablate", sae=f.sae, scope=f"{f.position}:{f.position + 1}"), saes)
             for f in features]
    together = ablate_nodes(model, list(saes), [PROMPT], target, versus, features)  # m(full) computed beside it
    want = _metric(model, saes, target, versus, specs) - _metric(model, saes, target, versus, [])
    assert together == pytest.approx(want, rel=1e-3, abs=1e-4)
    before = hook_ids(model.model)
    for bad, match in ((Node("nope", 1, 1, 0.0, 0.0), "no loaded SAE"), (Node("s0", 1, 0, 0.0, 0.0), "position 0"),
                       (Node("s0", 10**6, 1, 0.0, 0.0), "out of range")):
        with pytest.raises(InputError, match=match):
            ablate_nodes(model, list(saes), [PROMPT], target, versus, [bad])
    assert hook_ids(model.model) == before


def test_estimates_and_edges_equal_finite_differences(model_dirs, make_sae):
    model, saes = _setup(model_dirs, make_sae, "llama", torch.float64)
    target, versus = _target(model)
    result = find_circuit(model, list(saes), [PROMPT], target, versus, settings=CircuitSettings(nodes=40, steps=0, verify=3))
    eps = 1e-3

    def nudge(sae, feature, position, delta):
        spec = SteeringSpec(feature, delta, sae=sae, scope=f"{position}:{position + 1}")
        return resolve(spec, saes)

    def dm(sae, feature, position):  # dm/da with the error term fixed: adding delta * W_dec[f] there
        return (_metric(model, saes, target, versus, [nudge(sae, feature, position, eps)])
                - _metric(model, saes, target, versus, [nudge(sae, feature, position, -eps)])) / (2 * eps)

    features = [n for n in result.nodes if n.feature is not None][:6]
    for node in features:  # attribution patching: -a * dm/da
        want = -node.activation * dm(node.sae, node.feature, node.position)
        assert node.effect == pytest.approx(want, rel=1e-3, abs=1e-6), node.key

    def downstream_latent(rows, node):
        return _latent(model, saes.get("s1"), rows, node.position, node.feature)

    edges = [e for e in result.edges if "/err@" not in e["from"] and "/err@" not in e["to"]][:4]
    assert edges
    by_key = {n.key: n for n in result.nodes}
    for edge in edges:
        up_sae, rest = edge["from"].split("/")
        up_feature, up_pos = (int(v) for v in rest.split("@"))
        down = by_key[edge["to"]]
        # the upstream latent's value: its SAE's activation at that position, in the unchanged forward
        u = _latent(model, saes.get(up_sae), [], up_pos, up_feature)
        dd_du = (downstream_latent([nudge(up_sae, up_feature, up_pos, eps)], down)
                 - downstream_latent([nudge(up_sae, up_feature, up_pos, -eps)], down)) / (2 * eps)
        want = dm(down.sae, down.feature, down.position) * dd_du * -u
        assert edge["weight"] == pytest.approx(want, rel=1e-3, abs=1e-7), edge


def _latent(model, loaded, rows, position, feature) -> float:
    """SAE `loaded`'s activation of `feature` at `position`, in a forward steered by `rows`."""
    ids = model.tokenize(PROMPT).input_ids
    seen = {}
    module, _ = model.hook_module(model.hook_point(loaded.hook_name))
    handle = module.register_forward_hook(lambda m, i, o: seen.update(x=(o[0] if isinstance(o, tuple) else o)))
    try:
        with SteeringHooks(model, [rows], prompt_len=ids.shape[1]), torch.no_grad():
            model.model(input_ids=ids)
    finally:
        handle.remove()
    with torch.no_grad():
        return float(loaded.sae.encode(seen["x"][0, position])[feature])


def test_faithfulness_equals_an_independent_computation(model_dirs, make_sae):
    model, saes = _setup(model_dirs, make_sae, "gemma2")
    target, versus = _target(model)
    result = find_circuit(model, list(saes), [PROMPT], target, versus, settings=CircuitSettings(nodes=200, steps=2, verify=2))
    features = [n for n in result.nodes if n.feature is not None]
    ids = model.tokenize(PROMPT).input_ids
    special = model.tokenize(PROMPT).special_mask[0]

    def m_with(circuit):
        keep = {(n.sae, n.feature, n.position) for n in circuit}

        def hook_for(loaded):
            def edit(_m, _i, out):
                x = out[0] if isinstance(out, tuple) else out
                a = loaded.sae.encode(x[0])  # (T, d_sae)
                drop = torch.ones_like(a)
                drop[special] = 0.0  # special tokens are never ablated
                for (sae, f, p) in keep:
                    if sae == loaded.name:
                        drop[p, f] = 0.0
                new = x - ((a * drop) @ loaded.sae.W_dec)[None]
                return (new, *out[1:]) if isinstance(out, tuple) else new
            return edit

        handles = [model.hook_module(model.hook_point(s.hook_name))[0].register_forward_hook(hook_for(s)) for s in saes]
        try:
            with torch.no_grad():
                logits = model.model(input_ids=ids).logits[0, -1]
        finally:
            for h in handles:
                h.remove()
        return float(logits[target] - logits[versus])

    empty = m_with([])
    assert result.empty == pytest.approx(empty, rel=1e-4, abs=1e-4)
    for point in result.faithfulness[:4]:
        k = point["nodes"]
        want = (m_with(features[:k]) - empty) / (result.full - empty)
        assert point["score"] == pytest.approx(want, rel=1e-3, abs=1e-4), k


def test_the_logit_metric_is_the_value_why_explains_and_with_a_versus_the_metrics_are_one(model_dirs, make_sae):
    """metric="logit": m(full) is the target's logit, the very value `attribute` (why?) explains, and a node's
    measured ablation the logit's change under steering's ablate mode; with a versus log p and logit give one
    circuit (log p(t) - log p(v) = logit(t) - logit(v)), named so."""
    from saetui.sae.attribution import attribute

    model, saes = _setup(model_dirs, make_sae, "llama")
    target, versus = _target(model)
    settings = CircuitSettings(nodes=10, steps=2, verify=4, metric="logit")
    result = find_circuit(model, list(saes), [PROMPT], target, settings=settings)
    ids = model.tokenize(PROMPT).input_ids

    def logit(rows):
        with SteeringHooks(model, [rows], prompt_len=ids.shape[1]), torch.no_grad():
            return float(model.model(input_ids=ids).logits[0, -1, target].double())

    assert result.full == pytest.approx(logit([]), rel=1e-5, abs=1e-5)
    why = attribute(model, list(saes), PROMPT, target=target, verify=0)
    assert result.full == pytest.approx(why.value, rel=1e-5, abs=1e-5)
    assert result.metric == f"logit({result.target!r})" and result.to_dict()["metric"]["name"] == result.metric
    node = next(n for n in result.nodes if n.feature is not None and n.ablated is not None)
    spec = SteeringSpec(node.feature, 0.0, mode="ablate", sae=node.sae, scope=f"{node.position}:{node.position + 1}")
    assert node.ablated == pytest.approx(logit([resolve(spec, saes)]) - logit([]), rel=1e-3, abs=1e-4)
    assert ablate_nodes(model, list(saes), [PROMPT], target, None, [node], kind="logit") == pytest.approx(
        node.ablated, rel=1e-3, abs=1e-4)
    logprob = find_circuit(model, list(saes), [PROMPT], target, settings=CircuitSettings(nodes=10, steps=2, verify=4))
    with torch.no_grad():
        log_p = float(model.model(input_ids=ids).logits[0, -1].double().log_softmax(-1)[target])
    assert logprob.metric == f"log p({result.target!r})" and logprob.full == pytest.approx(log_p, rel=1e-5, abs=1e-5)
    pair = [find_circuit(model, list(saes), [PROMPT], target, versus,
                         settings=CircuitSettings(nodes=10, steps=2, verify=4, metric=kind)) for kind in ("logprob", "logit")]
    assert pair[0].metric == pair[1].metric == f"logit({pair[0].target!r}) - logit({pair[0].versus!r})"
    assert pair[0].full == pytest.approx(pair[1].full, rel=1e-5)
    assert [n.key for n in pair[0].nodes] == [n.key for n in pair[1].nodes]
    with pytest.raises(InputError, match="--metric must be one of logprob, logit, got 'prob'"):
        CircuitSettings(metric="prob")


def test_held_out_prompts_get_their_own_curve_and_bad_inputs_one_line(gemma2, make_sae):
    saes = SAEManager(gemma2)
    saes.add(make_sae(64, 64, EARLY), name="s")
    n = gemma2.tokenize("The cat sat on").input_ids.shape[1]
    other = next(p for p in ("The dog sat on", "The cat ran on", "The mat sat on", "A cat sat on")
                 if gemma2.tokenize(p).input_ids.shape[1] == n)
    result = find_circuit(gemma2, list(saes), ["The cat sat on"], " the", held_out=[other],
                          settings=CircuitSettings(nodes=5, steps=1, verify=3))
    # the held-out prompt's curve is scored with the circuit found on the other one (a feature firing only there
    # is outside every circuit, so even the last point may fall short of 1)
    held = result.held_out_faithfulness
    assert [p["nodes"] for p in held] == [p["nodes"] for p in result.faithfulness]
    assert all(p["score"] is not None and abs(p["score"]) < 10 for p in held)
    with pytest.raises(InputError, match="same number of tokens"):
        find_circuit(gemma2, list(saes), ["The cat sat on", "A much longer prompt than the other one"], " the")
    # no CLI flag in it: the app says it too
    with pytest.raises(InputError, match=r"versus is the target's own token \(' the'\)"):
        find_circuit(gemma2, list(saes), ["The cat sat on"], " the", " the")
    with pytest.raises(InputError, match="steps"):
        CircuitSettings(steps=-1)


def test_no_hook_is_left_after_an_error(gemma2, make_sae, monkeypatch):
    saes = SAEManager(gemma2)
    loaded = saes.add(make_sae(64, 64, EARLY), name="s")
    before = hook_ids(gemma2.model)
    calls = {"n": 0}
    original = type(loaded.sae).encode

    def failing(self, x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("encode blew up")
        return original(self, x)

    monkeypatch.setattr(type(loaded.sae), "encode", failing)
    with pytest.raises(RuntimeError, match="encode blew up"):
        find_circuit(gemma2, list(saes), ["The cat sat on"], " the", settings=CircuitSettings(steps=2))
    assert hook_ids(gemma2.model) == before


def test_session_and_cli_find_on_some_prompts_and_score_on_the_held_out_rest(tmp_path, capsys):
    """`saetui circuit` = Session.circuit = find_circuit on the prompts less the held-out share, scored on that
    share too; the JSON carries the contract's fields and the text form the same numbers."""
    import json

    from saetui.cli import main
    from saetui.session import Session
    from saetui.settings import CircuitSettings as Settings

    prompts = ["The capital of France is", "The capital of Spain is", "The capital of Italy is", "The capital of Egypt is"]
    (tmp_path / "more.txt").write_text("\n".join(prompts[1:]) + "\n", encoding="utf-8")
    settings = Settings(nodes=6, steps=2, verify=4, edges_per_node=3)
    assert settings.split(prompts) == (prompts[:3], prompts[3:])
    assert Settings(held_out=0.0).split(prompts) == (prompts, []) and Settings().split(prompts[:1]) == (prompts[:1], [])
    session = Session.open()
    want = find_circuit(session.model, list(session.saes), prompts[:3], " Paris", " Rome", settings=settings,
                        held_out=prompts[3:]).to_dict()
    assert session.circuit(prompts, " Paris", " Rome", settings=settings).to_dict() == want
    argv = ["circuit", "--prompt", prompts[0], "--prompts", str(tmp_path / "more.txt"), "--target", " Paris",
            "--versus", " Rome", "--nodes", "6", "--steps", "2", "--verify", "4", "--edges", "3"]
    assert main([*argv, "--json"]) == 0
    out, err = capsys.readouterr()
    got = json.loads(out)
    assert err == "" and got == json.loads(json.dumps(want))
    assert {"metric", "nodes", "edges", "faithfulness", "spearman"} <= set(got) and got["held_out"] == prompts[3:]
    assert [abs(n["effect"]) for n in got["nodes"]] == sorted((abs(n["effect"]) for n in got["nodes"]), reverse=True)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"{want['metric']['full']:.3f}" in text and "held out" in text and "Spearman" in text
    # --metric logit without a versus: the value `attribute` explains
    assert main(["circuit", "--prompt", prompts[0], "--target", " Paris", "--metric", "logit", "--nodes", "3",
                 "--steps", "1", "--verify", "3", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["metric"]["name"] == "logit(' Paris')"
    assert got["metric"]["full"] == pytest.approx(session.attribute(prompts[0], target=" Paris", verify=0).value, rel=1e-5)
