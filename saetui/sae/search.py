"""Feature search: an exact number, labels (token-aware, typo-tolerant), top-example tokens, promoted tokens.

    search_features(model, loaded, "paris")          label words, example tokens and promoted tokens
    search_features(model, loaded, "promotes red")   only the decoder's logit effect
    search_features(model, loaded, "123")            feature 123
Results are (feature, description, score), best first.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from saetui.models.model import ModelWithHooks
    from saetui.sae.index import FeatureIndex
    from saetui.sae.manager import LoadedSAE

LABELS_FILE = "labels.json"


def load_labels(index_dir: str | Path) -> dict[int, str]:
    """The labels saved in `index_dir` ({} when none). A corrupt labels.json is set aside (timestamped, with
    a notice naming it) and reads as {}; entries that are not `"FEATURE": "label"` are skipped."""
    from saetui.files import set_aside

    path = Path(index_dir) / LABELS_FILE
    try:
        if not path.is_file():
            return {}
        raw = path.read_bytes()
    except OSError:
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (ValueError, RecursionError) as exc:
        set_aside(path, f"could not be read as labels ({type(exc).__name__}); starting with no labels")
        return {}
    labels = {}
    for k, v in data.items():
        if isinstance(k, str) and k.isascii() and k.isdigit() and isinstance(v, str) and v.strip():
            labels[int(k)] = v
    return labels


def labels_of(index: FeatureIndex) -> dict[int, str]:
    """An index's labels: those shipped beside it, overridden by the user's (in its `labels_dir`)."""
    labels = load_labels(index.root)
    labels_dir = getattr(index, "labels_dir", index.root)
    if Path(labels_dir) != Path(index.root):
        labels.update(load_labels(labels_dir))
    return labels


def save_labels(index_dir: str | Path, labels: dict[int, str]) -> Path:
    """Write labels.json into `index_dir` atomically; returns its path."""
    from saetui.files import write_json_atomic

    return write_json_atomic(Path(index_dir) / LABELS_FILE, {str(k): v for k, v in sorted(labels.items())})


def save_labels_of(index: FeatureIndex, labels: dict[int, str]) -> Path:
    """Save the labels of an index where they belong (its `labels_dir`); returns that folder."""
    folder = Path(getattr(index, "labels_dir", index.root))
    save_labels(folder, labels)
    return folder


def import_labels(path: str | Path) -> dict[int, str]:
    """Labels from a Neuronpedia explanations export (JSON list or JSONL of objects with `index` and
    `description`) or a CSV with columns `feature,label`. The file must be UTF-8 (else an InputError
    with the line number); a row or record without a feature number or label is an InputError naming it."""
    import csv

    from saetui.errors import InputError
    from saetui.files import read_text

    path = Path(path)
    if not path.is_file():
        raise InputError(f"no labels file at {path}")
    text = read_text(path, "labels file")
    labels: dict[int, str] = {}

    def feature_number(value: object, where: str) -> int:
        s = str(value).strip()
        if isinstance(value, bool) or not (isinstance(value, int) or (s.isascii() and s.isdigit())):
            raise InputError(f"{where}: feature {value!r} is not a non-negative integer")
        return int(s)

    def label_text(value: object, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where}: no label")
        return value.strip()

    try:
        if path.suffix == ".csv":
            reader = csv.DictReader(text.splitlines())
            if not reader.fieldnames or not {"feature", "label"} <= set(reader.fieldnames):
                raise InputError(f"{path}: a labels CSV needs the columns feature,label (got {reader.fieldnames})")
            for row in reader:
                where = f"{path}:{reader.line_num}"
                labels[feature_number(row.get("feature"), where)] = label_text(row.get("label"), where)
        else:
            if path.suffix == ".jsonl":
                records = [(f"{path}:{n}", json.loads(line)) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
            else:
                data = json.loads(text)
                records = [(f"{path} record {n}", r) for n, r in enumerate(data if isinstance(data, list) else [data], 1)]
            for where, rec in records:
                if not isinstance(rec, dict):
                    raise InputError(f"{where}: not a JSON object")
                key = next((k for k in ("index", "feature", "featureIndex") if k in rec), None)
                desc = next((k for k in ("description", "label", "explanation") if k in rec), None)
                if key is None or desc is None:
                    raise InputError(f"{where}: expected Neuronpedia JSON/JSONL (index, description) or CSV (feature,label)")
                labels[feature_number(rec[key], where)] = label_text(rec[desc], where)
    except (ValueError, RecursionError, csv.Error) as exc:
        raise InputError(f"cannot read labels from {path}: expected Neuronpedia JSON/JSONL (index, description) "
                         f"or CSV (feature,label) ({type(exc).__name__}: {exc})") from exc
    return labels


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class LabelIndex:
    """Label words -> features, so a query costs a fuzzy match against the distinct words, not every label."""

    def __init__(self, labels: dict[int, str]) -> None:
        self.words: dict[str, set[int]] = {}
        for f, label in labels.items():
            for w in _words(label):
                self.words.setdefault(w, set()).add(f)

    def match(self, query: str) -> dict[int, float]:
        """feature -> mean over query words of the best similarity to one of its label's words (typos ~0.8)."""
        qwords = _words(query)
        totals: dict[int, float] = {}
        for q in qwords:
            best: dict[int, float] = {}
            for w in difflib.get_close_matches(q, self.words, n=20, cutoff=0.75):
                score = difflib.SequenceMatcher(None, q, w).ratio()
                for f in self.words[w]:
                    best[f] = max(best.get(f, 0.0), score)
            for f, score in best.items():
                totals[f] = totals.get(f, 0.0) + score
        return {f: t / len(qwords) for f, t in totals.items()} if qwords else {}


_LABEL_INDEXES: dict[int, tuple[dict[int, str], LabelIndex]] = {}


def _label_index(labels: dict[int, str]) -> LabelIndex:
    """One LabelIndex per labels dict, rebuilt when the dict is a different object."""
    cached = _LABEL_INDEXES.get(id(labels))
    if cached is None or cached[0] is not labels:
        _LABEL_INDEXES.clear()
        cached = (labels, LabelIndex(labels))
        _LABEL_INDEXES[id(labels)] = cached
    return cached[1]


def search_features(model: ModelWithHooks, loaded: LoadedSAE, query: str, *, labels: dict[int, str] | None = None,
                    index: FeatureIndex | None = None, promotes: bool = True, limit: int = 50) -> list[tuple[int, str, float]]:
    labels = labels or {}
    q = query.strip()
    if not q:
        return []
    if q.isdigit():
        f = int(q)
        return [(f, labels.get(f, ""), 1.0)] if f < loaded.d_sae else []
    scores: dict[int, tuple[float, str]] = {}

    def offer(f: int, score: float, why: str) -> None:
        if score > scores.get(f, (0.0, ""))[0]:
            scores[f] = (score, why)

    match = re.match(r"^promotes\s+(.+)$", q, re.IGNORECASE)
    word = match.group(1).strip() if match else q
    if not match:
        for f, score in _label_index(labels).match(q).items():
            if score >= 0.75:
                offer(f, 2.0 + score, labels[f])  # labels rank first
        if index is not None:
            for f in _example_hits(model, index, word):
                offer(f, 1.5, f"fires on {word!r}")
    token_ids = _first_tokens(model, word)
    if token_ids and promotes:
        from saetui.sae.effects import token_effects

        per_feature = token_effects(model, loaded, token_ids).mean(1)
        vals, idx = per_feature.topk(min(limit, per_feature.shape[0]))
        texts = "/".join(model.token_texts(token_ids))
        for f, v in zip(idx.tolist(), vals.tolist()):
            if v > 0:
                offer(f, min(1.0, v / max(1e-6, float(vals[0]))), f"promotes {texts!r} {v:+.2f}")
    ranked = sorted(scores.items(), key=lambda kv: -kv[1][0])[:limit]
    return [(f, labels.get(f) or why, score) for f, (score, why) in ranked]


def _first_tokens(model: ModelWithHooks, word: str) -> list[int]:
    """The first token of `word` and of " word"; when one of them is the whole word as a single token,
    only the whole-word ones (the first piece of "Paris" split as "P" + "aris" says nothing about Paris)."""
    firsts, whole = set(), set()
    for variant in (word, " " + word):
        pieces = model.tokenizer(variant, add_special_tokens=False)["input_ids"]
        if pieces:
            firsts.add(pieces[0])
            if len(pieces) == 1:
                whole.add(pieces[0])
    return sorted(whole or firsts)


def _example_hits(model: ModelWithHooks, index: FeatureIndex, word: str) -> list[int]:
    """Features whose top examples fire on a token spelling `word` (case-insensitive, spaces ignored)."""
    import torch

    target = set(_first_tokens(model, word))
    if not target:
        return []
    valid = index.top_pos >= 0
    fired = index.tokens.long()[index.top_pos.clamp(min=0)]  # (d_sae, K) token at each top example
    hit = (torch.isin(fired, torch.tensor(sorted(target))) & valid & (index.top_vals > 0)).any(1)
    return hit.nonzero().flatten().tolist()
