"""A seeded generator of English-like text with planted structure, for the bundled demo model and SAE.

Documents are short stories, facts, numbers (in words and digits), dialogue, lists, neutral mentions
(saetui.demo.frames) and chats (saetui.demo.chat), built from categorized word lists (saetui.demo.words) by
the sentence writer (saetui.demo.writer). Every category word keeps its category (as a character span), so
tests can score SAE features against ground truth: a "color" feature should fire on red/blue/green, and
steering it should make the model write more color words.

    docs = generate_corpus(1000, seed=0)
    docs[0].text, docs[0].spans   # spans: [(start, end, "color"), ...]
"""

from __future__ import annotations

import random

from saetui.demo.chat import CHAT_ROLES, CHAT_TOKENS, chat, render_chat  # noqa: F401  (re-exported)
from saetui.demo.frames import Piece, colour_fact, filler, mention, place_fact, sound_fact
from saetui.demo.numbers import arithmetic, numbers, order_fact
from saetui.demo.words import (ANIMAL_SOUNDS, CAPITALS, CATEGORIES, CITIES, COUNTRIES, NUMBERS, THING_COLOURS,  # noqa: F401
                               THINGS, WORDS, mark_categories, token_category)  # (re-exported)
from saetui.demo.writer import Document, Writer  # noqa: F401  (Document re-exported)


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
        "{country} has {capital} as its capital. ",
        "In {capital}, the capital of {country}, it was {weather}. ",
    ])
    w.write(template, **pair)


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
    """Lists: of one category (the steering and ablation prompts come from these) or of several."""
    if w.rng.random() < 0.4:
        kinds = ["np"] * w.rng.randint(2, 4) if w.rng.random() < 0.6 else ["adj"] * w.rng.randint(2, 4)
        items = [filler(w, k)[0] for k in kinds]
        head = w.one_of("The words on the board were", "On the cards she wrote", "He listed", "The answers were",
                        "We talked about", "I remember", "The list said") if kinds[0] == "np" or w.rng.random() < 0.5 \
            else w.one_of("The words on the board were", "The answers were", "The list said")
        pieces: list[Piece] = [(head, None)]
        for i, item in enumerate(items):
            pieces += item + ([(",", None)] if i < len(items) - 2 else [("and", None)] if i == len(items) - 2 else [(".", None)])
        w.emit(pieces)
        w.doc.add(" ")
        return
    template = w.rng.choice([
        "My favourite colours are {color}, {color2} and {color3}. ",
        "We bought {food}, {food2} and {food3}. ",
        "The farm has a {animal}, a {animal2} and a {animal3}. ",
        "We visited {country}, {country2} and {country3}. ",
        "{city}, {city2} and {city3} are big cities. ",
        "The class starts on {day} and ends on {day2}. ",
        "Count with me: {number}, {number2}, {number3}. ",
        "Our trip is in {month}, not in {month2}. ",
        "{name}, {name2} and {name3} came to the party. ",
        "It was {weather} on {day} and {weather2} on {day2}. ",
        "{country}, {country2} and {country3} are countries. ",
        "She felt {emotion}, then {emotion2}. ",
        "{color}, {color2} and {color3} are colours. ",
        "{food}, {food2} and {food3} are good to eat. ",
        "{day} and {day2} are days of the week. ",
        "{month} and {month2} are months. ",
        "{number}, {number2} and {number3} are numbers. ",
    ])
    w.write(template)


_KINDS = [(_capital_fact, 3), (place_fact, 1.5), (colour_fact, 0.7), (sound_fact, 0.7), (arithmetic, 1),
          (order_fact, 1), (numbers, 2.5), (_prose, 7), (_story, 4), (_dialogue, 2), (_listing, 1.5), (mention, 5)]


def generate_document(rng: random.Random) -> Document:
    """One document: a chat (one in four), or 2-5 parts (prose, stories, facts, numbers, sums, dialogue, lists,
    neutral mentions), a fifth of them starting with a category word as a typed sentence may."""
    w = Writer(rng)
    if rng.random() < 0.25:
        chat(w)
        return w.doc
    kinds, weights = zip(*_KINDS)
    if rng.random() < 0.2:
        mention(w, lead=True)
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


def colour_prompts() -> list[tuple[str, str, str]]:
    """(plain prompt, chat question, answer) for every planted thing colour."""
    return [(f"The colour of the {t} is", f"What colour is the {t}?", f" {c}") for t, c in THING_COLOURS.items()]


def sound_prompts() -> list[tuple[str, str, str]]:
    """(plain prompt, chat question, answer) for every planted animal sound."""
    return [(f"A {a} says", f"What sound does a {a} make?", f" {s}") for a, s in ANIMAL_SOUNDS.items()]
