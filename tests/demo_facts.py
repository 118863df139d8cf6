"""Facts about the bundled demo that tests rely on, derived from the shipped weights rather than written
down (so retraining the demo does not leave tests pointing at a feature number that means something else)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=None)
def color_feature() -> tuple[str, int]:
    """(SAE name, feature): the demo's late-SAE feature whose decoder direction most promotes color words
    (z-scored direct logit effect, among features that fire in the shipped index; what the first demo's
    feature 549 was)."""
    from saetui.demo import SAES, load_demo
    from saetui.demo.corpus import WORDS
    from saetui.sae.effects import logit_effects
    from saetui.sae.index import FeatureIndex

    model, saes = load_demo(device="cpu")
    late = SAES[-1]
    loaded = saes.get(late.name)
    effects = logit_effects(model, loaded)  # (d_sae, vocab)
    ids = sorted({model.tokenizer(" " + w, add_special_tokens=False)["input_ids"][0] for w in WORDS["color"]})
    max_acts = FeatureIndex.load(late.index_dir, model, loaded).max_activation()
    score = ((effects[:, ids].mean(1) - effects.mean(1)) / effects.std(1)).masked_fill(max_acts <= 0, float("-inf"))
    return late.name, int(score.argmax())
