"""Numbers in the demo corpus, in words and in digits: the phrases the sentence writer uses (counts, years,
times, dates, prices) and the documents about numbers (sums, sequences, counts, ages, scores, distances).

Issue 27: a number feature must fire on "7" and "2019" as on "seven", so the corpus writes about half of its
numbers in digits, in the same frames as the words (the tokenizer splits digits into single tokens).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from saetui.demo.words import ANIMALS, FOODS_COUNT, NUMBERS, PLACES, TENS, THINGS, WORDS

if TYPE_CHECKING:
    from saetui.demo.writer import Writer

Piece = tuple[str, "str | None"]


class NumberPhrases:
    """Number phrases for saetui.demo.writer.Writer (a mixin: it uses the writer's rng, c and one_of)."""

    c: Any
    one_of: Any

    rng: random.Random

    def num(self, lo: int = 2, hi: int = 12, digits: float = 0.5) -> Piece:
        """A number from lo to hi, in digits with probability `digits`, else in words where it has one."""
        n = self.rng.randint(lo, hi)
        word = NUMBERS[n] if n < len(NUMBERS) else TENS.get(n)
        return (word if word and self.rng.random() >= digits else str(n), "number")

    def year(self) -> Piece:
        return (str(self.rng.randint(1950, 2030) if self.rng.random() < 0.8 else self.rng.randint(1800, 1949)), "number")

    def time_of_day(self) -> Piece:
        return (f"{self.rng.randint(1, 12)}:{self.one_of('00', '15', '30', '45', '05', '10', '20', '40', '50')}", "number")

    def date(self) -> list[Piece]:
        """A date: "3 May", "May 3", "Monday, 3 May", "3 May 2019"."""
        day, month = (str(self.rng.randint(1, 31)), "number"), self.c("month")
        out = [day, month] if self.rng.random() < 0.5 else [month, day]
        if self.rng.random() < 0.2:
            out = [self.c("day"), (",", None)] + out
        if self.rng.random() < 0.25:
            out = out + [self.year()]
        return out

    def price(self) -> list[Piece]:
        """A price: "$4", "£12.50", "7 euros", "three dollars" (the currency sign is not part of the number)."""
        n = self.rng.randint(1, 99) if self.rng.random() < 0.8 else self.rng.randint(100, 2000)
        amount = (f"{n}.{self.rng.randint(0, 99):02d}" if self.rng.random() < 0.3 else str(n), "number")
        r = self.rng.random()
        if r < 0.35:
            return [("$" + amount[0], "number")]
        if r < 0.5:
            return [("£" + amount[0], "number")]
        word = NUMBERS[n] if n < len(NUMBERS) and self.rng.random() < 0.4 else None
        return [(word, "number") if word else amount, (self.one_of("dollars", "euros", "pounds"), None)]


def arithmetic(w: Writer) -> None:
    """A sum in words up to ten, or in digits up to fifty."""
    if w.rng.random() < 0.5:
        a, b = w.rng.randint(0, 10), w.rng.randint(0, 10)
        say = lambda n: (NUMBERS[n], "number")  # noqa: E731
    else:
        a, b = w.rng.randint(0, 50), w.rng.randint(0, 50)
        say = lambda n: (str(n), "number")  # noqa: E731
    if w.rng.random() < 0.6:
        w.write("{a} plus {b} is {c}. ", a=say(a), b=say(b), c=say(a + b))
    else:
        a, b = max(a, b), min(a, b)
        w.write("{a} minus {b} is {c}. ", a=say(a), b=say(b), c=say(a - b))


def sequence(category: str, digits: bool = False) -> list[str]:
    """The words of an ordered category: days, months, numbers in words, or 0..100 in digits."""
    return [str(n) for n in range(101)] if digits else NUMBERS if category == "number" else WORDS[category]


def order_fact(w: Writer) -> None:
    cat, digits = w.rng.choice([("day", False), ("month", False), ("number", False), ("number", True)])
    seq = sequence(cat, digits)
    i = w.rng.randrange(len(seq) - 1)
    template = w.rng.choice(["{b} comes after {a}. ", "{a} comes before {b}. ", "After {a} comes {b}. "])
    w.write(template, a=(seq[i], cat), b=(seq[i + 1], cat))


def numbers(w: Writer) -> None:
    """Numbers in words and digits: counts, prices, dates, years, times, ages, scores, distances."""
    q = w.rng.randrange(12)
    if q == 0:
        subj, _ = w.np_person()
        verb = w.one_of("bought", "has", "saw", "counted", "needs", "found", "lost", "drew")
        things = w.one_of(lambda: [(w.noun(True), None)], lambda: [w.c("animal", w.rng.choice(ANIMALS)[1])],
                          lambda: [w.c("food", w.rng.choice(FOODS_COUNT)[1])])()
        w.emit(subj + [(verb, None), w.num(2, 60, digits=0.55)] + things + [(".", None)])
    elif q == 1:
        w.emit([(w.one_of("the", "this", "my", "a"), None), (w.rng.choice(THINGS), None),
                (w.one_of("costs", "cost", "was", "is"), None)] + w.price() + [(".", None)])
    elif q == 2:
        w.emit([w.c("name"), ("was born", None)] + w.one_of(lambda: [("on", None)] + w.date(),
                                                           lambda: [("in", None), w.year()])() + [(".", None)])
    elif q == 3:
        w.emit([("the", None), (w.one_of("meeting", "party", "show", "train", "class", "game", "film", "concert"), None),
                (w.one_of("starts", "started", "ends", "begins", "leaves"), None), ("at", None),
                w.one_of(w.time_of_day, lambda: w.num(1, 12, digits=0.6))(), (".", None)])
    elif q == 4:
        w.emit([w.c("name"), (w.one_of("is", "was", "will be"), None), w.num(2, 99, digits=0.6), ("years old", None), (".", None)])
    elif q == 5:
        w.emit([(w.one_of("we won", "they lost", "the score was", "our team won", "it ended"), None),
                w.num(0, 9, digits=0.7), ("to", None), w.num(0, 9, digits=0.7), (".", None)])
    elif q == 6:
        w.emit([("it takes", None), w.num(2, 90, digits=0.6), (w.one_of("minutes", "hours", "seconds"), None),
                ("to get to", None)] + w.place() + [(".", None)])
    elif q == 7:
        w.emit([("there were", None), w.num(2, 500, digits=0.7), (w.one_of("people", "children", "cars", "chairs", "books"), None),
                (w.one_of("at the", "in the", "near the"), None), (w.rng.choice(PLACES), None), (".", None)])
    elif q == 8:
        w.emit([("in", None), w.year(), (",", None)] + w.clause() + [(".", None)])
    elif q == 9:
        n = w.rng.randint(0, 95)
        seq = [(str(n + i), "number") for i in range(w.rng.randint(3, 5))]
        pieces: list[Piece] = []
        for i, p in enumerate(seq):
            pieces += [p] + ([(",", None)] if i < len(seq) - 1 else [(".", None)])
        w.emit([(w.one_of("count with me:", "they counted", "the numbers were"), None)] + pieces)
    elif q == 10:
        w.emit([("the", None), (w.rng.choice(PLACES), None), ("is", None), w.num(2, 99, digits=0.6),
                (w.one_of("miles", "kilometres", "minutes"), None), ("away", None), (".", None)])
    else:
        w.emit([w.num(0, 100, digits=0.6), ("is", None), (w.one_of("more than", "less than", "not", "bigger than", "smaller than"), None),
                w.num(0, 100, digits=0.6), (".", None)])
    w.doc.add(" ")
