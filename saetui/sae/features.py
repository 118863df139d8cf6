"""What the detail view shows about one feature: its max activation and where that comes from, its density and
histogram, the tokens its decoder direction promotes and suppresses, and its top examples (see `describe`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from saetui.inputs import check_int
from saetui.sae.index import Example
from saetui.settings import DetailSettings

if TYPE_CHECKING:
    from saetui.models.model import ModelWithHooks
    from saetui.sae.manager import LoadedSAE


@dataclass
class FeatureInfo:
    """What the detail view shows about one feature (see `describe` for where each number comes from)."""

    sae: str
    feature: int
    label: str
    max_activation: float | None
    promoted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]
    neuronpedia_url: str | None
    density: float | None = None
    top_examples: list[Example] = field(default_factory=list)
    max_source: str = ""  # where max_activation comes from, special tokens included or not
    histogram: list[tuple[float, float, int]] = field(default_factory=list)  # (lo, hi, count); [] without index


def describe(model: ModelWithHooks, loaded: LoadedSAE, feature: int, *, k: int = DetailSettings.examples, index: Any = None,
             label: str = "", prompt_activations: Sequence[float] | None = None,
             prompt_counted: Sequence[bool] | None = None) -> FeatureInfo:
    """One feature, for the detail view. Where each number comes from:

    max_activation  with a feature index: the largest activation over every token it indexed, special
                    tokens (BOS/EOS/pad) excluded; without one: the largest over the last analyzed
                    prompt (`prompt_activations`, the tokens `prompt_counted` marks), special tokens excluded
                    (None before any analysis). `max_source` says which, so a larger value on a prompt's BOS
                    (shown in the token table) is not a contradiction.
    density         the share of indexed tokens the feature fires on (> 0); None without an index
    histogram       (lo, hi, count) bins of its nonzero activations in the index (log-spaced bins, the
                    counts add up to the tokens it fired on, empty bins at both ends left out); [] without
    top_examples    the index's top `k` activations, each an Example window with the feature's activation
                    on every token, recomputed in one batched forward over the documents' prefixes (so the
                    numbers are the ones the index saw; special tokens dropped from the windows)
    promoted/suppressed  the `k` tokens whose logits the decoder direction raises/lowers most per unit
                    activation (direct effect through the unembedding, saetui.sae.effects)
    """
    from saetui.sae.effects import logit_effects

    feature, k = loaded.check_feature(feature), check_int(k, "k (examples and tokens listed)")
    effects = logit_effects(model, loaded, [feature])[0]  # (vocab,)
    examples = index.exact_examples(model, loaded, feature, k) if index is not None else []
    up, down = effects.topk(min(k, len(effects))), (-effects).topk(min(k, len(effects)))  # k past the vocabulary: all
    texts = model.token_texts
    density, histogram = None, []
    if index is not None:
        max_act: float | None = float(index.max_activation()[feature])
        max_source = f"index: max over {index.n_tokens:,} tokens, special tokens (BOS/EOS/pad) excluded"
        density, histogram = index.density(feature), index.histogram(feature)
    elif prompt_activations is not None:  # no index: the max over the last prompt
        counted = [a for a, keep in zip(prompt_activations, prompt_counted or []) if keep]
        max_act = max(counted) if counted else None
        max_source = "this prompt, special tokens (BOS/EOS/pad) excluded (no feature index)"
    else:
        max_act, max_source = None, "n/a: no feature index and no analyzed prompt"
    return FeatureInfo(
        sae=loaded.name, feature=feature, label=label, max_activation=max_act,
        promoted=list(zip(texts(up.indices.tolist()), up.values.tolist())),
        suppressed=list(zip(texts(down.indices.tolist()), (-down.values).tolist())),
        neuronpedia_url=loaded.neuronpedia_url(feature),
        density=density, top_examples=examples, max_source=max_source, histogram=histogram,
    )
