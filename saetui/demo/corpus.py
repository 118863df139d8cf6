"""A seeded generator of English-like text with planted structure, for the bundled demo model and SAE.

Documents are short stories, facts, arithmetic, dialogue and lists built from categorized word
lists. Every category word keeps its category (as a character span), so tests can score SAE
features against ground truth: a "color" feature should fire on red/blue/green, and steering it
should make the model write more color words.

    docs = generate_corpus(1000, seed=0)
    docs[0].text, docs[0].spans   # spans: [(start, end, "color"), ...]
"""

from __future__ import annotations

import random
from typing import Callable

from saetui.demo.words import CAPITALS, CATEGORIES, NUMBERS, THINGS, WORDS  # noqa: F401  (re-exported)
from saetui.demo.writer import Document, Writer  # noqa: F401  (Document re-exported)


CHAT_ROLES = ("system", "user", "assistant")
#: The chat template's markers (special tokens of the demo tokenizer): <|user|>\n...<|end|>\n<|assistant|>\n...
CHAT_TOKENS = tuple(f"<|{r}|>" for r in CHAT_ROLES) + ("<|end|>",)


def render_chat(messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """The chat template in Python (without the BOS the tokenizer adds): the same text the tokenizer's
    Jinja `chat_template` renders after its `bos_token`."""
    out = ""
    for m in messages:
        out += f"<|{m['role']}|>\n{m['content'].strip()}<|end|>\n"
    return out + ("<|assistant|>\n" if add_generation_prompt else "")


def _capital_fact(w: Writer) -> None:
    country = w.rng.choice(list(CAPITALS))
    pair = dict(country=(country, "country"), capital=(CAPITALS[country], "capital"))
    template = w.rng.choice([
        "The capital of {country} is {capital}. ",
        "The capital of {country} is {capital}. ",
        "{capital} is the capital of {country}. ",
        "{name} lives in {capital}, the capital of {country}. ",
        "{name} flew to {country} and visited {capital}. ",
        "The capital city of {country} is {capital}. ",
        "We learned that the capital of {country} is {capital}. ",
    ])
    w.write(template, **pair)


def _arithmetic(w: Writer) -> None:
    a, b = w.rng.randint(0, 10), w.rng.randint(0, 10)
    if w.rng.random() < 0.6:
        w.write("{a} plus {b} is {c}. ", a=(NUMBERS[a], "number"), b=(NUMBERS[b], "number"), c=(NUMBERS[a + b], "number"))
    else:
        a, b = max(a, b), min(a, b)
        w.write("{a} minus {b} is {c}. ", a=(NUMBERS[a], "number"), b=(NUMBERS[b], "number"), c=(NUMBERS[a - b], "number"))


def _order_fact(w: Writer) -> None:
    seq = w.rng.choice([WORDS["day"], WORDS["month"], NUMBERS])
    cat = "day" if seq is WORDS["day"] else "month" if seq is WORDS["month"] else "number"
    i = w.rng.randrange(len(seq) - 1)
    template = w.rng.choice(["{b} comes after {a}. ", "{a} comes before {b}. ", "After {a} comes {b}. "])
    w.write(template, a=(seq[i], cat), b=(seq[i + 1], cat))


def _prose(w: Writer) -> None:
    for _ in range(w.rng.randint(1, 4)):
        w.emit(w.sentence())
    w.doc.add(" ")


def _story(w: Writer) -> None:
    """A few sentences about one person, with a pronoun carried along."""
    name = w.pick("name")
    for i in range(w.rng.randint(2, 5)):
        pieces = w.sentence()
        if i == 0 and pieces and pieces[0][1] is None and w.rng.random() < 0.5:
            pieces = [(name, "name")] + w.vp("3", "past") + [(".", None)]
        w.emit(pieces)
    w.doc.add(" ")


def _dialogue(w: Writer) -> None:
    for _ in range(w.rng.randint(1, 3)):
        name = w.pick("name")
        w.doc.add("\"" if w.doc.text.endswith(" ") or not w.doc.text else " \"")
        pieces = w.sentence()
        w.emit(pieces)
        w.doc.add("\" ")
        w.doc.add(w.one_of("said", "asked", "replied", "shouted", "whispered"))
        w.doc.add(" ")
        w.doc.add(name, "name")
        w.doc.add(". ")


def _listing(w: Writer) -> None:
    template = w.rng.choice([
        "My favourite colours are {color}, {color2} and {color3}. ",
        "We bought {food}, {food2} and {food3}. ",
        "The farm has a {animal}, a {animal2} and a {animal3}. ",
        "We visited {country}, {country2} and {country3}. ",
        "The class starts on {day} and ends on {day2}. ",
        "Count with me: {number}, {number2}, {number3}. ",
        "Our trip is in {month}, not in {month2}. ",
        "{name}, {name2} and {name3} came to the party. ",
        "It was {weather} on {day} and {weather2} on {day2}. ",
    ])
    w.write(template)


def _text_of(w: Writer, make: Callable[[Writer], None]) -> Document:
    sub = Writer(w.rng)
    make(sub)
    sub.doc.text = sub.doc.text.strip()
    return sub.doc


# Chat questions 3..9 of `_chat`: (questions, answers), one of each picked; {category} slots are filled in.
_SMALL_TALK: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    3: (("How do you feel today?", "How are you?", "Are you okay?"),
        ("I feel {emotion} today.", "I am {emotion}, thank you.", "I am a bit {emotion}.")),
    4: (("What is the weather like?", "Is it nice outside?", "What was the weather like on {day}?"),
        ("It is {weather} today.", "It was {weather} and {weather2}.", "It is {weather} outside.")),
    5: (("What did you eat for lunch?", "What should I cook tonight?", "What do you like to eat?"),
        ("I ate {food} and {food2}.", "You could cook {food}.", "I like {food}.")),
    6: (("Which animal do you like best?", "Name an animal.", "What pet should I get?"),
        ("I like the {animal}.", "A {animal}.", "You could get a {animal}.")),
    7: (("What day is it today?", "When is the meeting?", "Which day comes after {day}?"),
        ("Today is {day}.", "The meeting is on {day}.", "It is {day}.")),
    8: (("Name a colour.", "What is your favourite colour?", "Pick a color."),
        ("{color}.", "My favourite colour is {color}.", "{color}.")),
    9: (("When is your birthday?", "Which month is the warmest?", "Name a month."),
        ("My birthday is in {month}.", "{month} is usually the warmest.", "{month}.")),
}


def _chat(w: Writer) -> None:
    """Dialogue turns in the demo's chat format: questions about the planted facts and everyday talk."""
    turns = []
    if w.rng.random() < 0.1:
        turns.append(("system", Document(text=w.one_of("You are a helpful assistant.", "Answer in one sentence.",
                                                        "You are a friendly assistant. Keep answers short."))))
    for _ in range(w.rng.randint(1, 3)):
        q = w.rng.randrange(11)
        country = w.rng.choice(list(CAPITALS))
        qd, ad = Document(), Document()
        wq, wa = Writer(w.rng), Writer(w.rng)
        wq.doc, wa.doc = qd, ad
        if q == 0:
            wq.write(w.one_of("What is the capital of {c}?", "Which city is the capital of {c}?", "Tell me the capital of {c}."), c=(country, "country"))
            wa.write(w.one_of("The capital of {c} is {k}.", "{k} is the capital of {c}.", "{k}."), c=(country, "country"), k=(CAPITALS[country], "capital"))
        elif q == 1:
            a, b = w.rng.randint(0, 10), w.rng.randint(0, 10)
            wq.write(w.one_of("What is {a} plus {b}?", "How much is {a} plus {b}?"), a=(NUMBERS[a], "number"), b=(NUMBERS[b], "number"))
            wa.write(w.one_of("{a} plus {b} is {c}.", "It is {c}."), a=(NUMBERS[a], "number"), b=(NUMBERS[b], "number"), c=(NUMBERS[a + b], "number"))
        elif q == 2:
            thing = w.rng.choice(THINGS)
            wq.write(f"What colour is the {thing}?" if w.rng.random() < 0.5 else f"What color is your {thing}?")
            wa.write(w.one_of(f"The {thing} is {{color}}.", "It is {color}.", "It is {color} and {color2}."))
        elif q in _SMALL_TALK:
            questions, answers = _SMALL_TALK[q]
            wq.write(w.one_of(*questions))
            wa.write(w.one_of(*answers))
        else:
            wq.emit(wq.sentence())
            wa.emit(wa.sentence())
            if w.rng.random() < 0.5:
                wa.emit(wa.sentence())
        turns.append(("user", qd))
        turns.append(("assistant", ad))
    for role, d in turns:
        w.doc.add(f"<|{role}|>\n")
        offset = len(w.doc.text)
        text = d.text.strip()
        w.doc.spans.extend((s + offset, e + offset, c) for s, e, c in d.spans if e <= len(text))
        w.doc.text += text
        w.doc.add("<|end|>\n")


_KINDS = [(_capital_fact, 2), (_arithmetic, 1), (_order_fact, 1), (_prose, 8), (_story, 5), (_dialogue, 2), (_listing, 1)]


def generate_document(rng: random.Random) -> Document:
    """One document: a chat (one in eight), or 2-5 parts (prose, stories, facts, sums, dialogue, lists)."""
    w = Writer(rng)
    if rng.random() < 0.125:
        _chat(w)
        return w.doc
    kinds, weights = zip(*_KINDS)
    for make in rng.choices(kinds, weights=weights, k=rng.randint(2, 5)):
        make(w)
    w.doc.text = w.doc.text.rstrip()
    return w.doc


def generate_corpus(n_docs: int, seed: int = 0) -> list[Document]:
    """`n_docs` documents, the same ones for the same seed."""
    rng = random.Random(seed)
    return [generate_document(rng) for _ in range(n_docs)]


def capital_prompts() -> list[tuple[str, str]]:
    """("The capital of France is", " Paris") for every planted fact."""
    return [(f"The capital of {country} is", f" {capital}") for country, capital in CAPITALS.items()]
