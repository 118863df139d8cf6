"""Documents that put category words where their frame does not tell their category (issue 27): neutral
frames ("I keep thinking about {x}.") filled with a word of any category or none, often followed by a
sentence that tells it ("It is a country in Asia."), and the planted facts beside the capitals (where a city
or country is, what colour a thing is, what an animal says).

A detector trained here has to learn the word, not the frame: the hand-written held-out sentences
(heldout_frames.txt) use frames that no document of the corpus writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from saetui.demo.numbers import sequence
from saetui.demo.words import ANIMAL_SOUNDS, ANIMALS, CAPITALS, CITIES, COUNTRIES, FOODS_MASS, THING_COLOURS

if TYPE_CHECKING:
    from saetui.demo.writer import Writer

Piece = tuple[str, "str | None"]


def place_fact(w: Writer) -> None:
    """Where a city or a country is: "Naples is a city in Italy.", "Peru is a country in the Americas." """
    if w.rng.random() < 0.55:
        city, country = w.rng.choice(list(CITIES.items()))
        fixed = dict(x=(city, "city"), c=(country, "country") if country else ("the world", None))
        w.write(w.one_of("{x} is a city in {c}. ", "{x} is a big city in {c}. ", "{name} lives in {x}, a city in {c}. ",
                         "{x} is in {c}. ", "We flew to {x}, a city in {c}. ", "The city of {x} is in {c}. "), **fixed)
    else:
        country = w.rng.choice(list(COUNTRIES))
        fixed = dict(x=(country, "country"), where=(COUNTRIES[country], None))
        w.write(w.one_of("{x} is a country in {where}. ", "{x} is in {where}. ", "{name} comes from {x}, a country in {where}. ",
                         "The people of {x} live in {where}. ", "{x} is among the countries of {where}. "), **fixed)


def colour_fact(w: Writer) -> None:
    thing, colour = w.rng.choice(list(THING_COLOURS.items()))
    w.write(w.one_of("The colour of the {t} is {c}. ", "The {t} is {c}. ", "{c} is the colour of the {t}. ",
                     "Look at the {c} {t}! ", "The {t} is always {c}. ", "We painted the {t} {c}, because the {t} is {c}. "),
            t=(thing, None), c=(colour, "color"))


def sound_fact(w: Writer) -> None:
    animal, sound = w.rng.choice(list(ANIMAL_SOUNDS.items()))
    plural = dict(ANIMALS)[animal]
    w.write(w.one_of("A {a} says {s}. ", "The {a} said {s}. ", "{p} say {s}. ", "We heard a {a} go {s}. ",
                     "What does a {a} say? A {a} says {s}. ", "{name} heard the {a} say {s}. "),
            a=(animal, "animal"), p=(plural, "animal"), s=(sound, None))


# Frames that say nothing about the word they hold: a category word of any kind, or a general noun phrase or
# adjective, fits each, so the category is told by the word and by what follows it, not by the frame.
_NP_FRAMES = (
    "I keep thinking about {x}.", "Nobody talked about {x} that year.", "{x} was on the front page again.",
    "She wrote a long letter about {x}.", "He could not stop talking about {x}.", "The song is about {x}.",
    "We argued about {x} all evening.", "{x} came up in the quiz.", "The last question was about {x}.",
    "They made a short film about {x}.", "Do you remember {x}?", "What do you know about {x}?",
    "Tell me about {x}.", "I read something about {x} yesterday.", "{x} is hard to forget.",
    "The teacher asked us to draw {x}.", "Someone wrote {x} on the wall.", "I dreamed about {x} last night.",
    "{x} was the answer to the last question.", "Her story was about {x}.", "He said {x} and then went quiet.",
    "The next card said {x}.", "Everyone was talking about {x}.", "{x}, again!", "Why {x}?", "{x}? Really?",
    "My little brother asked about {x}.", "I found a book about {x}.", "{x} was the first word on the list.",
    "We spent an hour on {x}.", "The word was {x}.", "Guess what? {x}.", "All she could say was {x}.",
    "{x} is what I remember best.", "It had something to do with {x}.", "Think of {x}.",
)
_ADJ_FRAMES = (
    "Everything looked {x} that day.", "It all seemed so {x}.", "The word she used was {x}.",
    "{x} was the word he used.", "I would not call it {x}.", "It was {x}, and nobody argued.",
    "Somehow it felt {x}.", "The answer was {x}.", "He wrote {x} in his notebook.", "{x}, she said.",
    "Why {x}?", "Not {x} at all.", "The last word on the page was {x}.", "Is it {x}?", "It looked {x} to me.",
)
# What follows a word and tells its category.
_REVEAL = {
    "country": ("{X} is a country in {where}.", "It is a country in {where}.", "{X} is a country."),
    "capital": ("{X} is the capital of {country}.", "It is the capital of {country}.", "{X} is a city."),
    "city": ("{X} is a city in {country}.", "It is a big city.", "{X} is a city."),
    "animal": ("A {sg} is an animal.", "{P} are animals.", "It is an animal."),
    "food": ("{X} is a kind of food.", "You can eat {x}.", "It is food."),
    "color": ("{X} is a colour.", "{X} is a color.", "It is a colour."),
    "emotion": ("{X} is a feeling.", "It is how you feel."),
    "weather": ("{X} is a kind of weather.", "It means the weather is {x}."),
    "number": ("{X} is a number.", "{X} comes after {prev}.", "It is a number."),
    "day": ("{X} is a day of the week.", "{X} comes after {prev}."),
    "month": ("{X} is a month of the year.", "{X} comes after {prev}."),
    "name": ("{X} is a name.", "{X} is my friend."),
}
_NP_FILL = {"country": 3.0, "capital": 1.0, "city": 3.0, "animal": 2.0, "food": 2.0, "name": 1.0, "day": 1.0,
            "month": 1.0, "number": 1.0, None: 8.0}
_ADJ_FILL = {"color": 3.0, "emotion": 3.0, "weather": 3.0, None: 4.0}


def filler(w: Writer, kind: str) -> tuple[list[Piece], str | None, str]:
    """A word (or short phrase) for a neutral frame: (pieces, category, the category word itself)."""
    table = _NP_FILL if kind == "np" else _ADJ_FILL
    cat = w.rng.choices(list(table), weights=list(table.values()))[0]
    if cat is None:
        if kind == "adj":
            a = w.adj()
            return [(a, None)], None, a
        pieces, _ = w.np_general()
        return pieces, None, ""
    if cat == "animal":
        pieces = w.np_animal()
    elif cat == "food":
        pieces = w.np_food()
    elif cat == "number":
        pieces = [w.num(0, 100, digits=0.5)]
    else:
        pieces = [w.c(cat)]
    word = next(p for p, c in pieces if c == cat)
    return pieces, cat, word


def reveal(w: Writer, cat: str, word: str) -> None:
    """A sentence that tells the category of `word`, just mentioned."""
    template = w.rng.choice(_REVEAL[cat])
    fixed: dict[str, tuple[str, str | None]] = {"X": (word, cat), "x": (word, cat)}
    if cat == "country":
        fixed["where"] = (COUNTRIES[word], None)
    elif cat == "capital":
        fixed["country"] = (next(c for c, k in CAPITALS.items() if k == word), "country")
    elif cat == "city":
        if CITIES[word] is None:
            template = "{X} is a city."
        fixed["country"] = (CITIES[word] or "", "country")
    elif cat == "animal":
        sg, pl = next(pair for pair in ANIMALS if word in pair)
        fixed["sg"], fixed["P"] = (sg, "animal"), (pl, "animal")
    elif cat == "food" and word.endswith("s") and word not in FOODS_MASS:
        template = template.replace("is a kind", "are a kind")
    elif "{prev}" in template:
        seq = sequence(cat, digits=word.isdigit())
        if word in seq[1:]:
            fixed["prev"] = (seq[seq.index(word) - 1], cat)
        else:
            template = _REVEAL[cat][0]
    w.write(template + " ", **fixed)


def mention(w: Writer, lead: bool = False) -> None:
    """A word of any category, or none, in a frame that does not tell which, often followed by a sentence
    that does ("... Peru. It is a country in the Americas."). `lead`: the first frame starts with the word."""
    for i in range(w.rng.randint(1, 3)):
        kind = "np" if w.rng.random() < 0.65 else "adj"
        frames = _NP_FRAMES if kind == "np" else _ADJ_FRAMES
        frame = w.rng.choice([f for f in frames if f.startswith("{x}")] if lead and i == 0 else frames)
        pieces, cat, word = filler(w, kind)
        before, after = frame.split("{x}")
        start = not w.doc.text.strip() or w.doc.text.endswith((". ", "! ", "? ", "\n", "\" "))
        if before:
            w.doc.add(before if not w.doc.text or w.doc.text.endswith(" ") else " " + before)
            w.emit_inline(pieces)
        else:
            if w.doc.text and not w.doc.text.endswith(" "):
                w.doc.add(" ")
            w.emit_inline(pieces, capitalize=start)
        w.doc.add(after + " ")
        if cat is not None and w.rng.random() < 0.6:
            reveal(w, cat, word)
        if w.rng.random() < 0.3:
            w.emit(w.sentence())
            w.doc.add(" ")
