"""SAE health (saetui.sae.evals) against a brute-force computation: every document alone, one forward per
splice and per zero-ablation, the figures from the concatenated activations; KL against sae-lens's own."""

from __future__ import annotations

import pytest
import torch

from saetui.errors import InputError
from saetui.models.model import ModelWithHooks
from saetui.sae.evals import DENSE, EvalSettings, evaluate
from saetui.sae.manager import SAEManager
from tests.tolerance import assert_close_reduction

TEXTS = [f"The cat number {i} sat on {'the ' * (i % 3)}mat and looked at {i % 5} birds." for i in range(9)] + \
        ["One two three four five six seven eight nine ten.", "Red green blue yellow purple orange black white."]
EARLY, LATE = "blocks.1.hook_resid_post", "blocks.2.hook_resid_post"


def _sae(kind: str, d_in: int, d_sae: int, hook: str, seed: int):
    import sae_lens

    names = {"standard": ("StandardSAE", "StandardSAEConfig", {}), "jumprelu": ("JumpReLUSAE", "JumpReLUSAEConfig", {}),
             "gated": ("GatedSAE", "GatedSAEConfig", {}), "topk": ("TopKSAE", "TopKSAEConfig", {"k": 6})}
    cls, cfg_cls, extra = names[kind]
    cfg = getattr(sae_lens, cfg_cls)(d_in=d_in, d_sae=d_sae, dtype="float32", device="cpu", **extra)
    cfg.metadata.hook_name = hook
    sae = getattr(sae_lens, cls)(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sae.named_parameters():
            p.copy_(torch.rand(p.shape, generator=gen) * 0.6 if name == "threshold" else torch.randn(p.shape, generator=gen) * 0.3)
    return sae


def _brute(model, saes, texts):
    """Each document alone: a clean forward, one per SAE splice and one per hook zeroed, at its non-special tokens."""
    import torch.nn.functional as F
    from sae_lens.evals import _kl

    hooks = list(dict.fromkeys(s.hook_name for s in saes))
    xs = {s.name: [] for s in saes}
    ce = {"clean": 0.0, **{s.name: 0.0 for s in saes}, **{h: 0.0 for h in hooks}}
    kl = {s.name: 0.0 for s in saes}
    n_pred = 0

    def run(ids, counted, edit_hook=None, edit=None, capture=False):
        handles = []
        for hook in hooks:
            module, side = model.hook_module(model.hook_point(hook))

            def fn(_m, _i, out, hook=hook):
                x = out[0] if isinstance(out, tuple) else out
                if capture:
                    for s in saes:
                        if s.hook_name == hook:
                            xs[s.name].append(x[0][counted].clone())
                if hook == edit_hook:
                    new = x.clone()
                    new[0, counted] = edit(x[0, counted])
                    return (new, *out[1:]) if isinstance(out, tuple) else new
                return None

            assert side == "output"
            handles.append(module.register_forward_hook(fn))
        try:
            return model.model(input_ids=ids).logits[0, :-1]
        finally:
            for h in handles:
                h.remove()

    with torch.inference_mode():
        for text in texts:
            batch = model.tokenize(text)
            ids, counted = batch.input_ids, ~batch.special_mask[0]
            target = ids[0, 1:]
            clean = run(ids, counted, capture=True)
            ce["clean"] += float(F.cross_entropy(clean, target, reduction="sum"))
            n_pred += len(target)
            for s in saes:
                spliced = run(ids, counted, s.hook_name, lambda x, s=s: s.sae.decode(s.sae.encode(x)))
                ce[s.name] += float(F.cross_entropy(spliced, target, reduction="sum"))
                kl[s.name] += float(_kl(clean, spliced).sum())
            for h in hooks:
                ce[h] += float(F.cross_entropy(run(ids, counted, h, torch.zeros_like), target, reduction="sum"))
    out = {}
    for s in saes:
        x = torch.cat(xs[s.name])
        with torch.inference_mode():
            lat = s.sae.encode(x)
            r = s.sae.decode(lat)
        on = lat > 0
        clean, spliced, zero = ce["clean"] / n_pred, ce[s.name] / n_pred, ce[s.hook_name] / n_pred
        out[s.name] = dict(
            tokens=x.shape[0], l0=float(on.sum(-1).double().mean()),
            fvu=float(((x - r) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()),
            cosine=float(F.cosine_similarity(x, r, dim=-1).mean()),
            ce_loss_clean=clean, ce_loss_spliced=spliced, ce_loss_zero=zero,
            ce_recovered=(zero - spliced) / (zero - clean) if zero > clean else None, kl_spliced=kl[s.name] / n_pred,
            dead_fraction=float((~on.any(0)).double().mean()),
            dense_fraction=float((on.double().mean(0) > DENSE).double().mean()),
        )
    return out


@pytest.mark.parametrize("arch, kinds", [("gemma2", ("jumprelu", "standard")), ("llama", ("gated", "topk")),
                                         ("gpt2", ("jumprelu", "topk"))])
def test_every_figure_matches_a_brute_force_computation(model_dirs, arch, kinds):
    model = ModelWithHooks.from_pretrained(str(model_dirs(arch)))
    manager = SAEManager(model)
    for i, (kind, hook) in enumerate(zip(kinds, (EARLY, LATE))):
        manager.add(_sae(kind, model.d_model, 96, hook, seed=i), name=f"{kind}{i}")
    # a second SAE on the first hook: its splice is its own row group, the hook's zero row is shared
    manager.add(_sae("standard", model.d_model, 48, EARLY, seed=7), name="third")
    saes = list(manager)
    result = evaluate(model, saes, TEXTS, settings=EvalSettings(batch_size=4), progress=False)
    want = _brute(model, saes, TEXTS)
    assert result.documents == len(TEXTS) and result.tokens == want[saes[0].name]["tokens"]
    # batches of 4 padded documents vs each alone: other matmul shapes, so rounding apart (tests/tolerance.py)
    path = 4 * model.n_layers * model.d_model + model.config.vocab_size
    for h in result.saes:
        ref = want[h.name]
        assert h.tokens == ref["tokens"]
        for key in ("l0", "dead_fraction", "dense_fraction"):  # counts: equal, unless a latent sits on its threshold
            assert getattr(h, key) == pytest.approx(ref[key], abs=1.0 / ref["tokens"]), (h.name, key)
        assert (h.ce_recovered is None) == (ref["ce_recovered"] is None), h.name  # None: zeroing did not raise the loss
        for key in ("fvu", "cosine", "ce_loss_clean", "ce_loss_spliced", "ce_loss_zero", "ce_recovered", "kl_spliced"):
            if ref[key] is None:
                continue
            assert_close_reduction(torch.tensor(getattr(h, key)), torch.tensor(ref[key]), n=path,
                                   scale=max(abs(ref[key]), 1e-3), dtype=torch.float32, what=f"{h.name} {key}")
        assert sum(h.density_histogram["counts"]) + h.density_histogram["dead"] == manager.get(h.name).d_sae
        assert h.density_histogram["dead"] / manager.get(h.name).d_sae == pytest.approx(h.dead_fraction)
        assert 0 < h.kl_spliced and h.ce_loss_zero != h.ce_loss_clean  # the splices and zeros did something


def test_no_share_is_recovered_where_zeroing_does_not_raise_the_loss():
    """On text far from the demo's (code-like), zeroing the last SAE's residual lowers the loss: the share read 125%
    and more, as if the SAE did better than recovering everything. It is None, and the line says why."""
    from saetui.sae.evals import health_line
    from saetui.session import Session

    session = Session()
    session.load()
    texts = ['{"k": [1, 2, 3], "v": null} # zq %d ~~ <> ;; def f(x): return x ** 2' % i for i in range(40)]
    (h,) = session.evals(texts, saes=["demo-late"], progress=False).saes
    assert h.ce_loss_zero < h.ce_loss_clean and h.ce_recovered is None
    assert "recovered n/a: zeroing does not raise the loss" in health_line(h)


def test_the_histogram_counts_every_latent_in_its_half_decade():
    from saetui.sae.evals import density_histogram

    rates = torch.tensor([0.0, 0.0, 1.0, 0.5, 0.05, 1e-3, 2e-9], dtype=torch.float64)
    hist = density_histogram(rates)
    assert hist["dead"] == 2 and sum(hist["counts"]) == 5
    edges, counts = hist["edges"], hist["counts"]
    assert counts[0] == 1  # 2e-9: below the first edge (1e-8), in the first bin
    assert counts[-1] == 2  # 0.5 and 1.0: the last half decade (-0.5 .. 0)
    assert counts[edges.index(-1.5)] == 1 and counts[edges.index(-3.0)] == 1


def test_bad_inputs_get_one_line(gemma2, tmp_path):
    manager = SAEManager(gemma2)
    manager.add(_sae("jumprelu", 64, 32, EARLY, 0), name="s")
    with pytest.raises(InputError, match="has no text"):
        evaluate(gemma2, list(manager), ["   ", ""], progress=False)
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "x"}\n')
    with pytest.raises(InputError, match="has no field 'text'"):
        evaluate(gemma2, list(manager), bad, progress=False)
    with pytest.raises(InputError, match="batch-size"):
        EvalSettings(batch_size=0)
    with pytest.raises(InputError, match="no SAE"):
        evaluate(gemma2, [], TEXTS, progress=False)


def test_long_documents_are_cut_and_said_once_and_max_tokens_stops_early(gemma2):
    manager = SAEManager(gemma2)
    manager.add(_sae("jumprelu", 64, 32, EARLY, 0), name="s")
    long = " ".join(["cat"] * 400)  # beyond the tiny model's context of 128
    with pytest.warns(UserWarning, match=r"^2 document\(s\) longer than the model's context of 128 tokens were cut") as seen:
        result = evaluate(gemma2, list(manager), [long, long, TEXTS[0]], progress=False)
    assert len(seen) == 1 and result.cut == 2
    few = evaluate(gemma2, list(manager), TEXTS, settings=EvalSettings(max_tokens=10, batch_size=1), progress=False)
    assert few.documents == 1 and few.tokens >= 10


def test_cli_evals_prints_the_issues_json_and_refuses_a_missing_corpus(capsys, tmp_path):
    import json

    from saetui.cli import main

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"body": t}) + "\n" for t in TEXTS))
    assert main(["evals", "--corpus", str(corpus), "--field", "body", "--sae", "demo-late", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"corpus", "tokens", "documents", "saes"} and out["documents"] == len(TEXTS)
    (health,) = out["saes"]
    assert health["name"] == "demo-late" and set(health) == {
        "name", "hook", "tokens", "l0", "fvu", "cosine", "ce_loss_clean", "ce_loss_spliced", "ce_loss_zero", "ce_recovered",
        "kl_spliced", "dead_fraction", "dense_fraction", "density_histogram"}
    assert main(["evals", "--corpus", str(tmp_path / "none.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no dataset file" in err
    (tmp_path / "one.txt").write_text('{"body": "ignored as a field"}\n')  # --field asked of a .txt: said, not silent
    assert main(["evals", "--corpus", str(tmp_path / "one.txt"), "--field", "body", "--sae", "demo-late"]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"saetui: warning: field 'body' is not read: {tmp_path / 'one.txt'} is not .jsonl "
                                "(one text a line)"]
    assert out.startswith(f"{tmp_path / 'one.txt'}: 1 document, ")
    upper = tmp_path / "C.JSONL"  # as some tools name them: read as JSON lines, not as text
    upper.write_text(corpus.read_text())
    assert main(["evals", "--corpus", str(upper), "--field", "body", "--sae", "demo-late", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and json.loads(out)["documents"] == len(TEXTS)


def test_max_tokens_takes_the_same_documents_whatever_the_batch_size(tmp_path):
    """--max-tokens was checked once a batch: 100 positions read 4,394 at 64 documents a batch and 200 at 1 (and an
    index built on a GPU, whose batch follows free memory, changed with it). Evals and the index take the fewest
    documents that reach it, at any batch size."""
    from saetui.session import Session
    from saetui.settings import IndexSettings

    s = Session()
    s.load()
    corpus = [f"Tom has a red cat number {i} and Anna has a blue dog." for i in range(40)]
    seen = {bs: s.evals(corpus, ["demo"], max_tokens=50, batch_size=bs, progress=False) for bs in (1, 7, 64)}
    assert len({(r.documents, r.tokens) for r in seen.values()}) == 1
    one = seen[1]
    assert one.tokens >= 50 and one.documents < len(corpus)
    built = {bs: s.build_index(corpus, str(tmp_path / f"i{bs}"), "demo",
                               settings=IndexSettings(max_tokens=50, batch_size=bs)).summary()["tokens"] for bs in (1, 64)}
    assert built[1] == built[64] and built[1] < sum(len(s.model.tokenize(t).input_ids[0]) for t in corpus)
