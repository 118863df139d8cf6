"""Feature search: an exact number, labels (token-aware, typo-tolerant), top-example tokens, promoted tokens.

    search_features(model, loaded, "123")            kind "number": feature 123
    search_features(model, loaded, "promotes red")   kind "promotes": the decoder's direct logit effect on a word
    search_features(model, loaded, "paris")          kind "text": labels, then tokens the features fire on in
                                                     the index, then (one-token words) tokens they promote

The result is a SearchResult: hits best first, each with a score (what it is ranked by, comparable within
one result), the feature's label ("" if none) and `why`, one line saying what matched with its number;
`note` says how the query was read when that is not obvious (which form of a word, several token pieces).

Scores:
    number     1.0
    promotes   the direct logit effect per unit activation on the word's token (W_dec[f] @ W_U through the
               final norm, as in saetui.sae.effects); a word of several tokens: the mean over its pieces
    text       2 + label match quality (0.375..1: word similarity times how much of the label it covers),
               1 + share of the feature's top examples in the index that fire on the word,
               0 + promote effect as a fraction of the strongest promoter's (one-token words only);
               so label matches rank first, then index hits, then promoters, and `why` says which
"""

from __future__ import annotations

import difflib
import gc
import heapq
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from saetui.errors import InputError
from saetui.inputs import ascii_int, check_int, one_line_text
from saetui.settings import SearchSettings

if TYPE_CHECKING:
    from saetui.models.model import ModelWithHooks
    from saetui.sae.index import FeatureIndex
    from saetui.sae.manager import LoadedSAE

LABELS_FILE = "labels.json"


@dataclass(frozen=True)
class SearchHit:
    """One feature found by a search."""

    feature: int
    score: float  # what hits are ranked by; its meaning is in `why`, comparable within one result
    label: str  # the feature's label, "" if none (shown beside `why`, never replacing it)
    why: str  # one line: what matched, with its number, e.g. "promotes ' red' +2.30 logit/act"
    sae: str = ""  # the SAE the feature belongs to (set by Session.search)


@dataclass(frozen=True)
class SearchResult:
    """Hits of one query, best first, and how the query was read."""

    query: str
    kind: str  # "number" | "promotes" | "text"
    hits: list[SearchHit]
    note: str | None  # e.g. "'zzzq' is 4 tokens ('z', 'z', 'z', 'q'); ranked by the mean effect over them"

    @classmethod
    def merged(cls, results: Sequence[SearchResult], limit: int) -> SearchResult:
        """Several SAEs' results of one query as one: hits merged best first (at most `limit`), notes joined."""
        hits = sorted((h for r in results for h in r.hits), key=lambda h: -h.score)[:limit]
        notes = list(dict.fromkeys(r.note for r in results if r.note))
        return cls(results[0].query, results[0].kind, hits, "; ".join(notes) or None)


def load_labels(index_dir: str | Path, removals: bool = False) -> dict[int, str]:
    """The labels saved in `index_dir` ({} when none). A corrupt labels.json is set aside (timestamped, with
    a notice naming it) and reads as {}; entries that are not `"FEATURE": "label"` are skipped, and so are
    blank labels unless `removals` (a user's file says `"293": ""` for a shipped label they removed)."""
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
        set_aside(path, f"could not be read as labels ({type(exc).__name__}); the labels in it are not used")
        return {}
    labels, kept, bad = {}, {}, []
    for k, v in data.items():
        # a key of 19 digits and more names no feature of any SAE (and int() refuses over 4300)
        number = isinstance(k, str) and k.isascii() and k.isdigit() and len(k) < 19
        if not (number and isinstance(v, str)):
            bad.append(f"{k!r:.20}: {v!r:.20}")
            continue
        kept[k] = v
        if v.strip() or removals:
            labels[int(k)] = one_line_text(v)  # a file written by hand or by an older saetui: one line all the same
    if bad:  # the file as it was is kept aside, the usable entries stay in place (as session.json's bad fields)
        from saetui.files import write_json_atomic

        few = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        n = len(bad)
        backup = set_aside(path, f"has {n} entr{'y' if n == 1 else 'ies'} that {'is' if n == 1 else 'are'} not "
                                 f"\"FEATURE\": \"label\" ({few}), not used")
        if backup != path:
            try:
                write_json_atomic(path, kept)
            except OSError:  # the labels read are used all the same; the file stays aside
                pass
    return labels


def labels_of(index: FeatureIndex) -> dict[int, str]:
    """An index's labels: those shipped beside it, overridden by the user's (in its `labels_dir`), where a
    blank one removes the shipped label."""
    labels = load_labels(index.root)
    labels_dir = getattr(index, "labels_dir", index.root)
    if Path(labels_dir) != Path(index.root):
        for feature, label in load_labels(labels_dir, removals=True).items():
            if label.strip():
                labels[feature] = label
            else:
                labels.pop(feature, None)
    return labels


def save_labels(index_dir: str | Path, labels: dict[int, str]) -> Path:
    """Write labels.json into `index_dir` atomically; returns its path."""
    from saetui.files import write_json_atomic

    return write_json_atomic(Path(index_dir) / LABELS_FILE, {str(k): v for k, v in sorted(labels.items())})


def save_labels_of(index: FeatureIndex, labels: dict[int, str]) -> Path:
    """Save the labels of an index where they belong (its `labels_dir`); returns that folder. Where that is not
    the index's own folder (the bundled demo's are package data), it holds what differs from the shipped
    labels: the user's own and changed ones, and `""` for each shipped one removed (else it came back)."""
    folder = Path(getattr(index, "labels_dir", index.root))
    if folder != Path(index.root):
        shipped = load_labels(index.root)
        labels = {**{f: v for f, v in labels.items() if shipped.get(f) != v},
                  **{f: "" for f in shipped if f not in labels}}
    save_labels(folder, labels)
    return folder


def _words(text: str) -> list[str]:
    """Lower-cased words: letters and digits of any script ('kätzchen' is one word, not 'k' and 'tzchen')."""
    return re.findall(r"[^\W_]+", text.lower())


PREFIX = 0.9  # a query word that begins a label word (typed so far: 'bef' of 'before'), below an exact word


class LabelIndex:
    """Label words -> features, so a query costs a fuzzy match against the distinct words, not every label."""

    def __init__(self, labels: dict[int, str]) -> None:
        self.words: dict[str, set[int]] = {}
        self.n_words: dict[int, int] = {}
        for f, label in labels.items():
            words = set(_words(label))
            self.n_words[f] = len(words)
            for w in words:
                self.words.setdefault(w, set()).add(f)

    def match(self, query: str) -> dict[int, tuple[float, Any]]:
        """feature -> (quality, details): quality = s * (0.9 + 0.1 * c), s the mean over query words of the best
        similarity to one of the label's words (1 exact, typos ~0.8), c the share of the label's words matched;
        features with s < 0.75 are left out. The share only orders labels of about the same similarity: an exact
        word in a long label stays above a typo in a short one (with 0.5 + 0.5 * c, 'colour' in a 5-word label
        ranked below every 'colour' ~ 'color' hit). `how(details)` says it in words (only for the hits shown)."""
        qwords = list(dict.fromkeys(_words(query)))
        if not qwords:
            return {}
        best: dict[int, dict[str, tuple[float, str]]] = {}  # feature -> query word -> (similarity, label word)
        for q in qwords:
            close = {w: 1.0 if w == q else difflib.SequenceMatcher(None, q, w).ratio()
                     for w in difflib.get_close_matches(q, self.words, n=20, cutoff=0.75)}
            if len(q) >= 3:  # search as you type: the word being typed matches the words it begins
                close.update({w: max(close.get(w, 0.0), PREFIX) for w in self.words if w != q and w.startswith(q)})
            for w, score in close.items():
                for f in self.words[w]:
                    per = best.setdefault(f, {})
                    if score > per.get(q, (0.0, ""))[0]:
                        per[q] = (score, w)
        out = {}
        n = len(qwords)
        for f, per in best.items():
            s = sum(score for score, _ in per.values()) / n
            if s >= 0.75:
                matched = len({w for _, w in per.values()}) if len(per) > 1 else 1
                out[f] = (s * (0.9 + 0.1 * matched / max(1, self.n_words[f])), (per, matched, self.n_words[f]))
        return out

    @staticmethod
    def how(details: Any) -> str:
        """E.g. "exact word 'red'; 1 of 2 label words" or "'colour' ~ 'color' 0.91; 1 of 2 label words"."""
        per, matched, n_words = details
        parts = [f"exact word {w!r}" if score == 1.0 else f"{q!r} begins {w!r}" if score == PREFIX and w.startswith(q)
                 else f"{q!r} ~ {w!r} {score:.2f}" for q, (score, w) in per.items()]
        return f"{', '.join(parts)}; {matched} of {n_words} label words"


_LABEL_INDEXES: dict[int, tuple[dict[int, str], LabelIndex]] = {}


def _label_index(labels: dict[int, str]) -> LabelIndex:
    """One LabelIndex per labels dict, rebuilt when the dict is a different object."""
    cached = _LABEL_INDEXES.get(id(labels))
    if cached is None or cached[0] is not labels:
        _LABEL_INDEXES.clear()
        cached = (labels, LabelIndex(labels))
        _LABEL_INDEXES[id(labels)] = cached
        # The labels and their word index live as long as the session. Freezing them keeps Python's full
        # collections from scanning them again: with 65k labels, one query in six took 300 ms, not 30.
        # (Frozen objects are still freed by reference counting when dropped; neither holds cycles.)
        gc.freeze()
    return cached[1]


# ---------------------------------------------------------------------------------------------- words -> tokens
@dataclass(frozen=True)
class WordTokens:
    """How `promotes WORD` reads WORD: the form whose tokens are used, and every form considered."""

    word: str
    text: str  # the form used: " " + word or word (or exactly what was quoted)
    ids: list[int]
    pieces: list[str]  # the token texts of `ids`
    forms: list[tuple[str, list[int], list[str]]]  # (text, ids, pieces) of every form considered, preferred first
    note: str | None

    @property
    def single(self) -> bool:
        return len(self.ids) == 1


def _quoted(word: str) -> str | None:
    if len(word) >= 2 and word[0] == word[-1] and word[0] in "'\"":
        return word[1:-1]
    return None


def _check_word(word: str) -> None:
    if not word.strip():
        raise InputError("promotes what? write a word after it, e.g. promotes red (quote it to keep spaces: promotes ' red')")
    for ch in word:
        if ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn"):
            raise InputError(f"the word {word!r} has U+{ord(ch):04X}, which is not a printable character: give text")


def _show(pieces: list[str]) -> str:
    return ", ".join(repr(p) for p in pieces)


def word_tokens(model: ModelWithHooks, word: str) -> WordTokens:
    """The tokens `promotes WORD` ranks by. WORD alone and with a leading space are both considered; a form
    that is one token wins (the leading-space one, the form of a word inside a sentence, when both are);
    else the form with fewer pieces (leading space on a tie), ranked by the mean effect over its pieces.
    A quoted word ('red' or " red") is taken exactly as written. The note says what was chosen when
    another form exists or the word is several tokens. An empty or unprintable word is an InputError."""
    quoted = _quoted(word)
    _check_word(word if quoted is None else quoted)
    texts = [quoted] if quoted is not None else [" " + word, word]
    forms = []
    for text in texts:
        ids = list(model.tokenizer(text, add_special_tokens=False)["input_ids"])
        if ids:
            forms.append((text, ids, model.token_texts(ids)))
    if not forms:
        raise InputError(f"the word {word!r} has no tokens in this model's vocabulary")
    text, ids, pieces = min(forms, key=lambda f: len(f[1]))  # min keeps the first (leading space) on a tie
    others = [f for f in forms if f[0] != text]
    note = None
    if len(ids) > 1:
        note = f"{text!r} is {len(ids)} tokens ({_show(pieces)}); ranked by the mean logit effect over them"
        if others:
            note += "".join(f" ({o[0]!r} would be {len(o[1])})" for o in others)
    elif others:
        o_text, o_ids, o_pieces = others[0]
        if len(o_ids) == 1:
            note = f"ranked by the token {text!r}; {o_text!r} is a token too: promotes '{o_text}' ranks by it"
        else:
            note = f"ranked by the token {text!r}; {o_text!r} would be {len(o_ids)} tokens ({_show(o_pieces)})"
    return WordTokens(word, text, ids, pieces, forms, note)


# ---------------------------------------------------------------------------------------------- search
def search_features(model: ModelWithHooks, loaded: LoadedSAE, query: str, *, labels: dict[int, str] | None = None,
                    index: FeatureIndex | None = None, promotes: bool = True,
                    limit: int = SearchSettings.limit) -> SearchResult:
    """Features matching `query`, best first (see the module docstring for kinds and scores)."""
    labels = labels or {}
    limit = check_int(limit, "limit")
    q = query.strip()
    if not q:
        raise InputError("empty query: type a feature number, a label word or promotes WORD")
    if q.isdigit():
        if not q.isascii():
            raise InputError(f"feature number {q!r} must be written in ASCII digits")
        f = loaded.check_feature(ascii_int(q))
        why = "feature number"
        if index is not None:
            top = float(index.top_vals[f, 0].clamp(min=0))
            why += (f"; max {top:.2f}, fires on {index.density(f):.2%} of tokens in the index" if index.counts[f] > 0
                    else "; never fired in the index")
        return SearchResult(query, "number", [SearchHit(f, 1.0, labels.get(f, ""), why)], None)

    match = re.match(r"^promotes(?:\s+(.*))?$", q, re.IGNORECASE | re.DOTALL)
    if match and (match.group(1) is not None or query.rstrip() != query):  # "promotes" alone is a word to look up
        word = word_tokens(model, (match.group(1) or "").strip())
        hits = _promoters(model, loaded, word, labels, index, limit)
        return SearchResult(query, "promotes", hits, word.note)

    # feature -> (score, why): `why` is a string, or a function making it, called for the hits shown only
    found: dict[int, tuple[float, Any]] = {}

    def offer(f: int, score: float, why: Any) -> None:
        if f not in found or score > found[f][0]:
            found[f] = (score, why)

    label_index = _label_index(labels)
    for f, (quality, details) in label_index.match(q).items():
        offer(f, 2.0 + quality, (f, details))
    forms = _plain_forms(model, q)
    if index is not None and forms:
        for f, (share, text, top) in _fires_on(index, forms).items():
            offer(f, 1.0 + share, f"fires on {text!r} in {share:.0%} of its top examples (max {top:.2f} in index)")
    single = [(text, ids[0]) for text, ids in forms if len(ids) == 1]
    if promotes and single:
        text, token = single[0]  # the leading-space form when both are one token
        promoters = _promoters(model, loaded, WordTokens(q, text, [token], [text], [], None), labels, index, limit)
        if promoters:
            strongest = promoters[0].score
            for hit in promoters:
                offer(hit.feature, hit.score / strongest, f"{hit.why} ({hit.score / strongest:.0%} of the strongest)")
    note = None
    if index is None and not labels:
        note = "this SAE has no feature index or labels: only the tokens features promote were searched (build one with `saetui index`)"
    ranked = heapq.nsmallest(limit, found, key=lambda f: (-found[f][0], labels.get(f, ""), f))

    def why(f: int) -> str:
        w = found[f][1]
        return w if isinstance(w, str) else f"label {labels[f]!r} ({label_index.how(w[1])})"

    hits = [SearchHit(f, found[f][0], labels.get(f, ""), why(f)) for f in ranked]
    return SearchResult(query, "text", hits, note)


def _plain_forms(model: ModelWithHooks, text: str) -> list[tuple[str, list[int]]]:
    """A free-text query's token forms (with a leading space first, then as typed), for index and promote hits."""
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") for ch in text):
        return []
    forms = []
    for variant in (" " + text, text):
        ids = list(model.tokenizer(variant, add_special_tokens=False)["input_ids"])
        if ids:
            forms.append((variant, ids))
    return forms


def _promoters(model: ModelWithHooks, loaded: LoadedSAE, word: WordTokens, labels: dict[int, str],
               index: FeatureIndex | None, limit: int) -> list[SearchHit]:
    """Features by their direct logit effect per unit activation on the word's token(s), mean over the pieces."""
    from saetui.sae.effects import token_effects

    per_feature = token_effects(model, loaded, word.ids).float().mean(1).cpu()  # (d_sae,)
    vals, idx = per_feature.topk(min(limit, per_feature.shape[0]))
    what = repr(word.text) if word.single else f"{word.text!r} (mean over {len(word.ids)} tokens)"
    hits = []
    for f, v in zip(idx.tolist(), vals.tolist()):
        if v <= 0:
            break
        why = f"promotes {what} {v:+.2f} logit/act"
        if index is not None:
            top = float(index.top_vals[f, 0].clamp(min=0))
            why += f"; {v * top:+.2f} at its index max {top:.2f}" if top > 0 else "; never fired in the index"
        hits.append(SearchHit(f, v, labels.get(f, ""), why))
    return hits


def _fires_on(index: FeatureIndex, forms: list[tuple[str, list[int]]], longest: int = 8) -> dict[int, tuple[float, str, float]]:
    """feature -> (share of its top examples whose firing token is part of one of the forms' token sequences,
    the form that matched most, the largest of those activations). Forms over `longest` tokens are skipped.
    Occurrences are found along the corpus (O(tokens * length)), then looked up at each top example."""
    import torch

    tokens = index.tokens.long()
    n = len(tokens)
    forms = [(text, ids) for text, ids in forms if len(ids) <= min(longest, n)]
    if not forms:
        return {}
    covered = torch.zeros(len(forms), n, dtype=torch.bool)  # [form, position]: part of an occurrence of the form
    for i, (_, ids) in enumerate(forms):
        m = n - len(ids) + 1
        starts = torch.ones(m, dtype=torch.bool)
        for j, t in enumerate(ids):
            starts &= tokens[j : j + m] == t
        for j in range(len(ids)):
            covered[i, j : j + m] |= starts
    pos, valid, n_valid = index.top_positions()
    rows, cols = (valid & covered.any(0)[pos]).nonzero(as_tuple=True)  # the top examples on one of the forms
    if len(rows) == 0:
        return {}
    d = len(n_valid)
    per_form = torch.stack([torch.bincount(rows[covered[i, pos[rows, cols]]], minlength=d) for i in range(len(forms))], 1)
    share = torch.bincount(rows, minlength=d).double() / n_valid.clamp(min=1).double()
    top = torch.full((d,), float("-inf")).scatter_reduce(0, rows, index.top_vals[rows, cols].float(), "amax")
    feats = rows.unique()
    best = per_form[feats].argmax(1)  # ties: the first, the leading-space form
    return {f: (s, forms[b][0], t) for f, s, b, t in
            zip(feats.tolist(), share[feats].tolist(), best.tolist(), top[feats].tolist())}
