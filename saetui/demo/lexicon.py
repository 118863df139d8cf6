"""The demo corpus's general English vocabulary, built once at training time and shipped as `lexicon.json`.

`python -m saetui.demo.train lexicon` takes the most frequent English words from `wordfreq` and their
parts of speech and inflections from `lemminflect` (both only in the `train` extra), keeps nouns,
adjectives and adverbs that are common and unambiguous, adds the hand-written verbs below with their
inflections, and drops every word that is (or could be read as) a planted category word, so that
category words keep their category everywhere in the corpus. The corpus generator only reads the JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

LEXICON_FILE = Path(__file__).parent / "lexicon.json"

# Verbs by how the corpus uses them: T takes an object ("she fixed the door"), I does not ("he laughed").
TRANSITIVE = """make take give find tell bring buy carry catch choose clean close cook cut draw drink drop
enjoy fix follow forget hear help hide hit hold keep kick know leave lend lift like love meet miss move need
open order pack paint pay pick plant pour prefer protect pull push put read remember repair sell send share
show teach throw touch understand use visit want wash watch wear win wrap write answer ask build call check
count describe discover explain fill finish hate hug invite join learn lose mention notice offer pass plan
prepare raise reach receive repeat save search serve solve study test thank trust try borrow collect copy
cover deliver design guess imagine measure mix rent ride shake sign spend steal switch taste boil bake grab
hang lock mend press rescue rub scratch spill squeeze stir wipe""".split()
INTRANSITIVE = """arrive come go laugh lie listen live rest run sit sleep smile stand stay swim talk travel
wait walk work cry dance fall jump shout sing stop agree appear disappear happen hurry return shine wander
whisper breathe fly float grow climb hike relax shop skate sail sneeze yawn complain cheer""".split()

# Words never used as general vocabulary: they collide with a category word ("may", "march", "turkey",
# "mark"), belong to a category in another form, are a planted fact's thing or sound (the sky is blue, a cow
# says moo: never another colour or animal), or are not fit for a demo.
EXCLUDE = set("""may march turkey china chile mark august bill grace sue will rose jack rob pat
hot cold warm cool fish duck bear fox owl bat seal orange lime gold colour color blue red green
one ones won monday sunday
shit fuck fucking sex sexy porn damn hell ass bitch dick cock pussy whore slut rape nigga nigger gay
drug drugs suicide nazi terrorist terrorism abortion bullshit crap penis vagina naked nude kill killed
killing murder gun guns weapon weapons bomb dead death die dying war wars army military police prison
god jesus christ church bible allah islam muslim christian jewish religion religious catholic holy
trump obama president democrat democrats republican republicans election vote votes political politics
government congress senate party parties
think say look saw things whatever wow via sir mine none pro smith khan warren terry bobby randy matt anal
gather rip ai mama multi mid whatsoever responsible self unlike pacific interstate desktop presidential
parliamentary legislative electoral democratic racial racism abusive psychiatric biblical orthodox secular
violent cancer disease crime terror invasion bullet conspiracy stupid dumb amber mild
interested worried confused pleased relaxed anxious furious unhappy miserable glad sorry afraid mad thankful
eager desperate asleep fond
sky sun sea snow grass coal blood pumpkin lemon strawberry chalk mud moo woof meow quack baa roar neigh hoot
croak squeak oink buzz howl hiss bray tweet slavery ken
""".split())

FUNCTION_WORDS = set("""a an the this that these those my your his her its our their some any many much
few more most every each all both no not other another such own same what which who whom whose where when
why how whether if then than because since while although though until unless after before as so and or
but nor yet for of to in on at by with from about into onto over under above below between among through
during without within along across behind beside near off out up down around upon toward towards against
me him us them it myself yourself himself herself itself ourselves themselves i you he she we they
is am are was were be been being do does did done have has had having can could shall should would must
might ought there here also just only very too quite really even still already again ever never always
often sometimes maybe perhaps please yes no okay oh hello hi thanks thank
one two three four five six seven eight nine ten something anything nothing everything someone anyone
everyone nobody somebody anybody everybody""".split())

_ALLOWED_ING_ED = {"morning", "evening", "building", "meeting", "painting", "wedding", "feeling", "ceiling",
                   "clothing", "beginning", "wing", "ring", "king", "spring", "string", "thing", "something",
                   "interested", "excited", "tired", "worried", "bored", "scared", "surprised", "pleased",
                   "crowded", "talented", "relaxed", "confused", "amazed", "delighted", "annoyed", "embarrassed"}
_ADVERBS_WITHOUT_LY = {"always", "never", "often", "sometimes", "soon", "already", "again", "together", "here",
                       "maybe", "later", "almost", "quite", "too", "forever", "everywhere", "somewhere", "twice",
                       "instead", "perhaps", "outside", "inside", "upstairs", "downstairs", "abroad", "tomorrow",
                       "yesterday", "today", "tonight", "early", "late", "fast", "hard", "well", "away", "home"}


def build_lexicon(n_words: int = 12000, n_nouns: int = 1500, n_adjectives: int = 420, n_adverbs: int = 90,
                  category_words: set[str] | None = None) -> dict:
    """The lexicon from wordfreq's English list (needs the `train` extra)."""
    import wordfreq
    from lemminflect import getAllLemmas, getInflection

    from saetui.demo.words import WORDS

    banned = EXCLUDE | FUNCTION_WORDS | {w.lower() for ws in WORDS.values() for w in ws}
    banned |= category_words or set()
    verbs = set(TRANSITIVE) | set(INTRANSITIVE)
    nouns, adjectives, adverbs = [], [], []
    for word in wordfreq.top_n_list("en", n_words):
        if not re.fullmatch(r"[a-z]{2,}", word) or word in banned or word in verbs:
            continue
        lemmas = getAllLemmas(word)
        own = {pos for pos, forms in lemmas.items() if word in forms}
        inflected = any(word not in forms for forms in lemmas.values())  # "went", "things", "coming"
        if inflected and word not in _ALLOWED_ING_ED:
            continue
        if word.endswith(("ing", "ed")) and word not in _ALLOWED_ING_ED:
            continue
        freq = wordfreq.word_frequency(word, "en")
        if own == {"ADV"} and (word.endswith("ly") or word in _ADVERBS_WITHOUT_LY):
            if len(adverbs) < n_adverbs:
                adverbs.append([word, freq])
        elif own == {"ADJ"} or (own == {"ADJ", "VERB"} and word.endswith(("ed",))):
            if len(adjectives) < n_adjectives:
                adjectives.append([word, freq])
        elif "NOUN" in own and own <= {"NOUN", "VERB"}:
            plural = (getInflection(word, "NNS") or (word + "s",))[0]
            if not re.fullmatch(r"[a-z]+", plural) or plural in banned or len(nouns) >= n_nouns:
                continue
            nouns.append([word, "people" if word == "person" else plural, freq])
    verb_rows = []
    for kind, words in (("T", TRANSITIVE), ("I", INTRANSITIVE)):
        for v in dict.fromkeys(words):
            past = getInflection(v, "VBD")[0]
            pp = getInflection(v, "VBN")[0]
            if "'" in pp:
                pp = past
            verb_rows.append([v, getInflection(v, "VBZ")[0], past, getInflection(v, "VBG")[0], pp, kind,
                              wordfreq.word_frequency(v, "en")])
    return {"nouns": nouns, "adjectives": adjectives, "adverbs": adverbs, "verbs": verb_rows,
            "source": f"wordfreq {wordfreq.__version__ if hasattr(wordfreq, '__version__') else ''} top {n_words}, lemminflect"}


def write_lexicon(path: Path = LEXICON_FILE) -> Path:
    lex = build_lexicon()
    path.write_text(json.dumps(lex, separators=(",", ":")) + "\n", encoding="utf-8")
    return path


def load_lexicon(path: Path = LEXICON_FILE) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class SamplingLexicon:
    """The general vocabulary as the sentence writer draws from it: words with sampling weights."""

    nouns: list[tuple[str, str]]
    noun_w: list[float]
    adjectives: list[str]
    adj_w: list[float]
    adverbs: list[str]
    trans: list[tuple[str, ...]]
    trans_w: list[float]
    intrans: list[tuple[str, ...]]
    intrans_w: list[float]


_LEX: SamplingLexicon | None = None


def sampling_lexicon() -> SamplingLexicon:
    """lexicon.json, loaded once, as word lists with sampling weights."""
    global _LEX
    if _LEX is None:
        raw = load_lexicon()
        # Sampling weights: frequency^0.4 flattens the long tail so rarer words are still seen often.
        nouns = [(n[0], n[1]) for n in raw["nouns"]]
        verbs = {k: [tuple(v[:5]) for v in raw["verbs"] if v[5] == k] for k in "TI"}
        vw = {k: [max(v[6], 1e-6) ** 0.4 for v in raw["verbs"] if v[5] == k] for k in "TI"}
        _LEX = SamplingLexicon(nouns, [n[2] ** 0.4 for n in raw["nouns"]], [a[0] for a in raw["adjectives"]],
                               [a[1] ** 0.4 for a in raw["adjectives"]], [a[0] for a in raw["adverbs"]],
                               verbs["T"], vw["T"], verbs["I"], vw["I"])
    return _LEX
