"""The demo corpus's sentence grammar: `Writer` builds sentences from composable phrases over the category
words (saetui.demo.words) and the general vocabulary (lexicon.json), into a `Document` that keeps every
category word's character span (number phrases, in words and digits, come from saetui.demo.numbers's
NumberPhrases). saetui.demo.corpus chooses what kind of text each document is."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from saetui.demo.lexicon import sampling_lexicon
from saetui.demo.numbers import NumberPhrases
from saetui.demo.words import (ANIMALS, CONJUNCTIONS, FOODS_COUNT, FOODS_MASS, FRONTS, NUMBERS, PEOPLE, PLACES, PREPS,
                               SUBJ_PRONOUNS, THE_COUNTRIES, THINGS, WORDS)


@dataclass
class Document:
    """Text plus the character spans of its category words: (start, end, category)."""

    text: str = ""
    spans: list[tuple[int, int, str]] = field(default_factory=list)

    def add(self, piece: str, category: str | None = None) -> None:
        if category is not None:
            self.spans.append((len(self.text), len(self.text) + len(piece), category))
        self.text += piece

    def category_at(self, start: int, end: int) -> str | None:
        """The category of the word covering characters [start, end), if any."""
        for s, e, cat in self.spans:
            if start < e and end > s:
                return cat
        return None


Piece = tuple[str, "str | None"]
_FOOD_PLURAL = [pl for _, pl in FOODS_COUNT] + FOODS_MASS


class Writer(NumberPhrases):
    """Builds sentences from composable phrases; every category word keeps its category span."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.doc = Document()
        self.plural = False  # whether the last np_animal was plural
        self.lex = sampling_lexicon()

    # ---------------------------------------------------------------- words
    def pick(self, category: str) -> str:
        """A word of the category as most frames use it: an animal in the singular, a food as a plural or a
        mass noun ("apples", "rice")."""
        if category == "animal":
            return self.rng.choice(ANIMALS)[0]
        if category == "food":
            return self.rng.choice(_FOOD_PLURAL)
        return self.rng.choice(WORDS[category])

    def place_name(self) -> Piece:
        return self.c(self.rng.choices(("country", "capital", "city"), weights=(5, 1.5, 5))[0])

    def c(self, category: str, word: str | None = None) -> Piece:
        return (word if word is not None else self.pick(category), category)

    def noun(self, plural: bool = False) -> str:
        sg, pl = self.rng.choices(self.lex.nouns, weights=self.lex.noun_w)[0]
        return pl if plural else sg

    def adj(self) -> str:
        return self.rng.choices(self.lex.adjectives, weights=self.lex.adj_w)[0]

    def verb(self, transitive: bool) -> tuple[str, ...]:
        if transitive:
            return self.rng.choices(self.lex.trans, weights=self.lex.trans_w)[0]
        return self.rng.choices(self.lex.intrans, weights=self.lex.intrans_w)[0]

    def one_of(self, *options: Any) -> Any:
        return self.rng.choice(options)

    # ---------------------------------------------------------------- noun phrases
    def det(self, plural: bool, following: str) -> str:
        if plural:
            return self.one_of("the", "some", "many", "my", "our", "these", "those", "their", "all the", "a few")
        d = self.one_of("the", "the", "a", "a", "my", "your", "his", "her", "this", "that", "our", "every")
        if d == "a" and following[:1].lower() in "aeiou":
            d = "an"
        return d

    def modifier(self) -> list[Piece]:
        """An optional adjective: general, or a color (things), most often none."""
        r = self.rng.random()
        if r < 0.45:
            return []
        if r < 0.78:
            return [(self.adj(), None)]
        return [self.c("color")]

    def np_general(self, plural: bool | None = None) -> tuple[list[Piece], bool]:
        plural = self.rng.random() < 0.3 if plural is None else plural
        mods = self.modifier()
        noun = self.noun(plural)
        if mods and mods[0][0][0] in "aeiou" and not plural:
            return [(self.one_of("an", "the", "my", "your", "our"), None)] + mods + [(noun, None)], plural
        if plural and self.rng.random() < 0.25:
            return [self.c("number", self.one_of(*NUMBERS[2:13]))] + mods + [(noun, None)], True
        first = mods[0][0] if mods else noun
        return [(self.det(plural, first), None)] + mods + [(noun, None)], plural

    def np_thing(self) -> list[Piece]:
        thing = self.rng.choice(THINGS)
        if self.rng.random() < 0.6:
            return [(self.det(False, "x"), None), self.c("color"), (thing, None)]
        return [(self.det(False, thing), None), (thing, None)]

    def np_animal(self) -> list[Piece]:
        """An animal noun phrase; `self.plural` says whether it is plural."""
        r = self.rng.random()
        animal, plural = self.rng.choice(ANIMALS)
        self.plural = r < 0.3
        if r < 0.2:
            return [(self.one_of("the", "some", "many", "our", "those", "wild"), None), self.c("animal", plural)]
        if r < 0.3:
            return [self.num(2, 30, digits=0.4), self.c("animal", plural)]
        r = (r - 0.3) / 0.7
        if r < 0.3:
            return [(self.one_of("a", "the", "my", "our", "their", "that"), None), self.c("color"), self.c("animal", animal)]
        if r < 0.45:
            return [(self.one_of("a", "the"), None), self.c("emotion"), self.c("animal", animal)]
        if r < 0.55:
            adj = self.adj()
            return [("an" if adj[0] in "aeiou" else self.one_of("a", "the"), None), (adj, None), self.c("animal", animal)]
        d = self.one_of("a", "the", "the", "my", "your", "our", "his", "her", "that")
        if d == "a" and animal[0] in "aeiou":
            d = "an"
        return [(d, None), self.c("animal", animal)]

    def np_food(self) -> list[Piece]:
        r = self.rng.random()
        if r < 0.15:
            sg, _ = self.rng.choice([f for f in FOODS_COUNT if f[0]])
            det = "an" if sg[0] in "aeiou" else self.one_of("a", "one", "the", "my")
            return [(det, "number" if det == "one" else None), self.c("food", sg)]
        if r < 0.22:
            return [self.num(2, 12, digits=0.4), self.c("food", self.rng.choice(FOODS_COUNT)[1])]
        if r < 0.5:
            return [self.c("food")]
        if r < 0.75:
            return [(self.one_of("some", "the", "fresh", "more", "no", "cheap", "my", "our"), None), self.c("food")]
        return [(self.one_of("a bowl of", "a plate of", "a box of", "a bag of", "lots of", "a little"), None), self.c("food")]

    def np_person(self) -> tuple[list[Piece], str]:
        """A person as subject: (pieces, agreement) with agreement in {"1", "2", "3", "p"}."""
        r = self.rng.random()
        if r < 0.4:
            return [self.c("name")], "3"
        if r < 0.7:
            p = self.rng.choice(list(SUBJ_PRONOUNS))
            return [self.c("pronoun", p)], {"I": "1", "you": "2", "he": "3", "she": "3"}.get(p, "p")
        sg, pl = self.rng.choice(PEOPLE)
        if self.rng.random() < 0.25:
            return [(self.one_of("the", "my", "our", "their", "some"), None), (pl, None)], "p"
        d = self.one_of("the", "my", "her", "his", "our", "a", "your")
        return [(d, None), (sg, None)], "3"

    def person_object(self) -> list[Piece]:
        r = self.rng.random()
        if r < 0.45:
            return [self.c("name")]
        if r < 0.75:
            return [(self.one_of("me", "him", "her", "us", "them", "you"), None)]
        sg, _ = self.rng.choice(PEOPLE)
        return [(self.one_of("the", "my", "his", "her", "our"), None), (sg, None)]

    def place(self) -> list[Piece]:
        if self.rng.random() < 0.55:
            return [self.place_name()]
        return [("the", None), (self.rng.choice(PLACES), None)]

    def time_phrase(self) -> list[Piece]:
        r = self.rng.random()
        if r < 0.25:
            return [(self.one_of("on", "on", "last", "next", "every", "by", "until", "since"), None), self.c("day")]
        if r < 0.45:
            return [(self.one_of("in", "in", "in early", "in late", "last", "next", "every", "until", "since"), None), self.c("month")]
        if r < 0.55:
            return [("on a", None), self.c("weather"), (self.one_of("day", "morning", "afternoon", "evening", "night"), None)]
        if r < 0.6:
            return [(self.one_of("at", "around", "before", "after"), None), self.num(1, 12, digits=0.3),
                    (self.one_of("o'clock", "in the morning", "in the evening"), None)]
        if r < 0.65:
            return [(self.one_of("at", "around", "before", "after", "by"), None), self.time_of_day()]
        if r < 0.7:
            return [("for", None), self.num(2, 90, digits=0.6), (self.one_of("minutes", "hours", "days", "weeks", "years"), None)]
        if r < 0.76:
            return [(self.one_of("on", "on", "by", "until", "since"), None)] + self.date()
        if r < 0.8:
            return [(self.one_of("in", "in", "since", "before", "after"), None), self.year()]
        return [(self.one_of("yesterday", "today", "tomorrow", "in the morning", "at night", "last week", "this year",
                             "after school", "after lunch", "every day", "later that day", "in the summer",
                             "in the winter", "last night", "this morning", "at the weekend", "for a long time"), None)]

    def adjunct(self) -> list[Piece]:
        r = self.rng.random()
        if r < 0.3:
            return self.time_phrase()
        if r < 0.45:
            return [(self.one_of("in", "at", "near", "outside", "behind"), None)] + self.place()
        if r < 0.55:
            return [("with", None)] + self.person_object()
        if r < 0.6:
            return [(self.rng.choice(self.lex.adverbs), None)]
        np, _ = self.np_general()
        return [(self.rng.choice(PREPS), None)] + np

    # ---------------------------------------------------------------- verb phrases
    def be(self, agr: str, tense: str) -> str:
        if tense == "past":
            return "was" if agr in ("1", "3") else "were"
        if tense == "present":
            return {"1": "am", "3": "is"}.get(agr, "are")
        return self.one_of("will be", "might be", "would be", "could be")

    def inflect(self, v: tuple[str, ...], agr: str, tense: str) -> str:
        base, s, past, ing, pp = v
        if tense == "past":
            return self.one_of(past, past, past, f"{'was' if agr in '13' else 'were'} {ing}", f"{'has' if agr == '3' else 'have'} {pp}")
        if tense == "present":
            return self.one_of(s if agr == "3" else base, f"{self.be(agr, 'present')} {ing}")
        return f"{self.one_of('will', 'can', 'should', 'must', 'might', 'would', 'could', 'wants to', 'needs to', 'did not', 'likes to')} {base}"

    def vp(self, agr: str, tense: str, animate: bool = True) -> list[Piece]:
        """A verb phrase for a subject with agreement `agr`."""
        r = self.rng.random()
        w = self.one_of
        V = lambda base, s, past, ing, pp: self.inflect((base, s, past, ing, pp), agr, tense)  # noqa: E731
        if not animate:  # things and animals-as-things: mostly copulas and intransitives
            r = self.rng.choice([0.32, 0.36, 0.5, 0.9])
        if r < 0.16:
            v = self.verb(True)
            obj, _ = self.np_general()
            return [(self.inflect(v, agr, tense), None)] + obj
        if r < 0.26:
            v = self.verb(False)
            return [(self.inflect(v, agr, tense), None)] + self.adjunct()
        if r < 0.32:
            return [(self.be(agr, tense), None), (w("very", "so", "really", "a little", "quite", "not", "too", ""), None), (self.adj(), None)]
        if r < 0.36:
            return [(self.be(agr, tense), None), (w("", "", "very", "really", "not", "all"), None), self.c("color")]
        if r < 0.44 and animate:
            return [(w(V("feel", "feels", "felt", "feeling", "felt"), V("look", "looks", "looked", "looking", "looked"),
                       V("seem", "seems", "seemed", "seeming", "seemed"), V("get", "gets", "got", "getting", "got"),
                       self.be(agr, tense), self.be(agr, tense)), None),
                    (w("", "", "very", "so", "a bit", "really", "not"), None), self.c("emotion")]
        if r < 0.52 and animate:
            return [(w(V("eat", "eats", "ate", "eating", "eaten"), V("cook", "cooks", "cooked", "cooking", "cooked"),
                       V("buy", "buys", "bought", "buying", "bought"), V("like", "likes", "liked", "liking", "liked"),
                       V("share", "shares", "shared", "sharing", "shared"), V("bring", "brings", "brought", "bringing", "brought"),
                       V("want", "wants", "wanted", "wanting", "wanted"), V("love", "loves", "loved", "loving", "loved")), None)] + self.np_food()
        if r < 0.6 and animate:
            return [(w(V("see", "sees", "saw", "seeing", "seen"), V("feed", "feeds", "fed", "feeding", "fed"),
                       V("find", "finds", "found", "finding", "found"), V("watch", "watches", "watched", "watching", "watched"),
                       V("draw", "draws", "drew", "drawing", "drawn"), V("chase", "chases", "chased", "chasing", "chased"),
                       V("hear", "hears", "heard", "hearing", "heard"), V("follow", "follows", "followed", "following", "followed")), None)] + self.np_animal()
        if r < 0.64 and animate:
            return [(V("paint", "paints", "painted", "painting", "painted"), None), ("the", None),
                    (self.rng.choice(THINGS), None), self.c("color")]
        if r < 0.7 and animate:
            about = self.rng.choice(["color", "food", "animal", "country", "weather", "month", "general", "general"])
            topic = (self.np_general()[0] if about == "general" else
                     [("the", None), self.c(about)] if about in ("weather",) else [self.c(about)])
            return [(w(V("talk", "talks", "talked", "talking", "talked"), V("think", "thinks", "thought", "thinking", "thought"),
                       V("dream", "dreams", "dreamed", "dreaming", "dreamed"), V("read", "reads", "read", "reading", "read"),
                       V("write", "writes", "wrote", "writing", "written"), V("sing", "sings", "sang", "singing", "sung"),
                       V("care", "cares", "cared", "caring", "cared"), V("know", "knows", "knew", "knowing", "known")), None), ("about", None)] + topic
        if r < 0.78 and animate:
            r2 = self.rng.random()
            if r2 < 0.5:
                return [(w(V("go", "goes", "went", "going", "gone"), V("travel", "travels", "travelled", "travelling", "travelled"),
                           V("fly", "flies", "flew", "flying", "flown"), V("move", "moves", "moved", "moving", "moved"),
                           V("return", "returns", "returned", "returning", "returned"), V("drive", "drives", "drove", "driving", "driven")), None),
                        ("to", None)] + self.place()
            if r2 < 0.8:
                return [(w(V("live", "lives", "lived", "living", "lived"), V("work", "works", "worked", "working", "worked"),
                           V("stay", "stays", "stayed", "staying", "stayed"), V("study", "studies", "studied", "studying", "studied")), None),
                        ("in", None)] + self.place()
            return [(w(V("come", "comes", "came", "coming", "come"), V("call", "calls", "called", "calling", "called")), None),
                    ("from", None), self.c(self.one_of("country", "capital"))]
        if r < 0.84 and animate:
            r2 = self.rng.random()
            n = self.num(2, 40, digits=0.5)
            if r2 < 0.4:
                return [(w(V("have", "has", "had", "having", "had"), V("buy", "buys", "bought", "buying", "bought"),
                           V("see", "sees", "saw", "seeing", "seen"), V("need", "needs", "needed", "needing", "needed")), None),
                        n, (self.noun(True), None)]
            if r2 < 0.7:
                return [(V("count", "counts", "counted", "counting", "counted"), None), ("to", None), n]
            return [(self.be(agr, tense), None), self.num(2, 90, digits=0.5), ("years old", None)]
        if r < 0.9 and animate:
            v = self.verb(self.rng.random() < 0.6)
            obj = self.np_general()[0] if v in self.lex.trans else self.adjunct()
            return [(w(V("want", "wants", "wanted", "wanting", "wanted"), V("decide", "decides", "decided", "deciding", "decided"),
                       V("try", "tries", "tried", "trying", "tried"), V("hope", "hopes", "hoped", "hoping", "hoped"),
                       V("plan", "plans", "planned", "planning", "planned"), V("need", "needs", "needed", "needing", "needed"),
                       V("forget", "forgets", "forgot", "forgetting", "forgotten"), V("love", "loves", "loved", "loving", "loved")), None),
                    ("to", None), (v[0], None)] + obj
        if r < 0.95:
            v = self.verb(False)
            return [(self.inflect(v, agr, tense), None)] + self.adjunct()
        v = self.verb(True)
        return [(self.inflect(v, agr, tense), None)] + self.person_object()

    # ---------------------------------------------------------------- clauses and sentences
    def clause(self, tense: str | None = None) -> list[Piece]:
        tense = tense or self.rng.choices(["past", "present", "future"], weights=[5, 3, 1])[0]
        r = self.rng.random()
        if r < 0.55:
            subj, agr = self.np_person()
            out = subj + self.vp(agr, tense)
        elif r < 0.68:
            subj = self.np_animal()
            out = subj + self.vp("p" if self.plural else "3", tense, animate=self.rng.random() < 0.6)
        elif r < 0.78:
            subj, plural = self.np_general()
            out = subj + self.vp("p" if plural else "3", tense, animate=False)
        elif r < 0.84:
            out = [("it", None), (self.be("3", tense), None), (self.one_of("", "very", "quite", "too", "so"), None), self.c("weather")]
            if self.rng.random() < 0.5:
                out += self.time_phrase()
        elif r < 0.89:
            out = [(self.one_of("the weather", "the day", "the morning", "the night", "the afternoon"), None),
                   (self.be("3", tense), None), self.c("weather")]
        elif r < 0.94:
            subj = self.np_thing()
            out = subj + [(self.be("3", tense), None), (self.one_of("", "very", "not", "too", "really"), None),
                          self.c("color") if self.rng.random() < 0.5 else (self.adj(), None)]
        else:
            subj = self.np_food()
            plural = subj[-1][0].endswith("s")
            out = subj + [(self.be("p" if plural else "3", tense), None),
                          (self.one_of("delicious", "fresh", "cheap", "expensive", "ready", "on the table", "in the kitchen",
                                       "for dinner", "very good", "too sweet", "gone"), None)]
        if self.rng.random() < 0.3:
            out += self.adjunct()
        return out

    def sentence(self) -> list[Piece]:
        r = self.rng.random()
        end = [(self.one_of(".", ".", ".", ".", "!"), None)]
        if r < 0.32:
            return self.clause() + end
        if r < 0.55:
            return self.clause() + [(self.rng.choice(CONJUNCTIONS).strip(), "conj")] + self.clause() + end
        if r < 0.65:
            return [(self.rng.choice(FRONTS), None)] + self.clause() + [(",", None)] + self.clause() + end
        if r < 0.72:
            return self.time_phrase() + [(",", None)] + self.clause() + end
        if r < 0.76:
            subj, _ = self.np_person()
            return subj + [(self.one_of("said", "thinks", "knew", "told me", "believes", "heard", "hoped"), None),
                           ("that", None)] + self.clause() + end
        if r < 0.84:
            return self.question()
        if r < 0.88:
            return self.imperative()
        if r < 0.92:
            return [(self.one_of("there was", "there were", "there is", "there are"), None)] + \
                self.one_of(self.np_animal, self.np_thing, lambda: self.np_general()[0], self.np_food)() + \
                [(self.one_of("in", "on", "near", "behind", "under"), None), ("the", None), (self.rng.choice(PLACES + THINGS), None)] + end
        return self.opinion()

    def question(self) -> list[Piece]:
        q = self.rng.randrange(9)
        w = self.one_of
        if q == 0:
            subj, agr = self.np_person()
            v = self.verb(True)
            return [(w("did", "do" if agr != "3" else "does", "will", "can", "should"), None)] + subj + [(v[0], None)] + \
                self.np_general()[0] + [("?", None)]
        if q == 1:
            subj, agr = self.np_person()
            return [(w("why", "when", "how"), None), (self.be(agr, w("past", "present")), None)] + subj + [self.c("emotion"), ("?", None)]
        if q == 2:
            return [(w("what colour is", "what color is", "what color was", "which colour is"), None), ("the", None),
                    (self.rng.choice(THINGS), None), ("?", None)]
        if q == 3:
            return [(w("do you like", "does she like", "did they eat", "would you like", "have you tried"), None)] + self.np_food() + [("?", None)]
        if q == 4:
            return [(w("have you ever been to", "did you go to", "do you want to visit", "where is"), None), self.c(w("country", "capital")), ("?", None)]
        if q == 5:
            return [("how many", None), (self.noun(True), None), (w("did", "do", "will"), None)] + [self.c("name")] + \
                [(w("see", "need", "buy", "have"), None), ("?", None)]
        if q == 6:
            return [(w("did you see", "have you seen", "can you find", "where is"), None)] + self.np_animal() + [("?", None)]
        if q == 7:
            return [(w("is it", "was it", "will it be"), None), self.c("weather"), (w("today", "yesterday", "tomorrow", "outside", "there"), None), ("?", None)]
        subj, agr = self.np_person()
        return [(w("what", "where", "when", "why"), None), (w("did", "will", "does" if agr == "3" else "do"), None)] + subj + \
            [(self.verb(False)[0], None), ("?", None)]

    def imperative(self) -> list[Piece]:
        w = self.one_of
        q = self.rng.randrange(5)
        if q == 0:
            return [(w("please", "do not", "don't", ""), None), (self.verb(True)[0], None)] + self.np_general()[0] + [(w(".", "!"), None)]
        if q == 1 and self.rng.random() < 0.5:
            return [("look at the", None), self.c("color"), (self.rng.choice(THINGS), None), ("!", None)]
        if q == 1:
            return [("look at", None)] + self.np_animal() + [("!", None)]
        if q == 2:
            return [(w("please buy", "don't forget the", "try the", "pass me the", "eat your"), None), self.c("food"), (".", None)]
        if q == 3:
            return [(w("paint it", "use the", "choose"), None), self.c("color"), (".", None)]
        return [(w("meet me", "call me", "come back"), None)] + self.time_phrase() + [(".", None)]

    def opinion(self) -> list[Piece]:
        w = self.one_of
        q = self.rng.randrange(9)
        if q == 0:
            return [self.c("color"), ("is", None), (w("my favourite colour", "my favorite color", "a nice colour", "her favourite colour",
                                                      "a colour", "a color", "not my colour"), None), (".", None)]
        if q == 1:
            return [(w("my favourite animal is the", "I have always liked the", "the best pet is a", "a good pet is the"), None), self.c("animal"), (".", None)]
        if q == 2:
            return [self.c("pronoun", w("I", "we", "they", "you")), (w("love", "like", "hate", "prefer", "miss"), None), self.c(w("food", "food", "color", "month"))] + [(".", None)]
        if q == 3:
            return [self.c("country"), ("is", None), (w("a country", "a big country", "a small country", "a beautiful country", "far away"), None), (".", None)]
        if q == 4:
            return [self.c("day"), (w("is", "was"), None), (w("a long day", "my favourite day", "a busy day", "the best day", "too short", "a holiday"), None), (".", None)]
        if q == 5:
            return [self.c("month"), (w("is", "was"), None), (w("often", "usually", "always", "very", "never"), None), self.c("weather"), (".", None)]
        if q == 6:
            a = self.pick("animal")
            return [(w("a", "the", "every"), None), self.c("animal", a), ("is", None), (w("an animal", "a kind of animal", "a small animal", "an animal with a tail"), None), (".", None)]
        if q == 7:
            return [(w("I think", "everyone knows", "it is true that", "maybe"), None), self.c("number"), ("is", None),
                    (w("a number", "a lucky number", "my favourite number"), None), (".", None)] if self.rng.random() < 0.5 else \
                [self.c("number"), ("is", None), (w("more than", "less than", "not"), None), self.c("number"), (".", None)]
        return [(w("the", "my", "this"), None), (self.noun(), None), (self.one_of("is", "was", "looks", "seems"), None), (self.adj(), None), (".", None)]

    def emit_inline(self, pieces: list[Piece], capitalize: bool = False) -> None:
        """Append words inside a sentence that is being written: spaced, "the" before the United States."""
        for i, (word, cat) in enumerate(pieces):
            if word in THE_COUNTRIES and (i == 0 or pieces[i - 1][0].lower() != "the"):
                self.doc.add("The " if capitalize and i == 0 else "the ")
                capitalize = False
            if i > 0:
                self.doc.add(" ")
            self.doc.add(word[0].upper() + word[1:] if capitalize and i == 0 else word, cat)

    def emit(self, pieces: list[Piece], quote: bool = False) -> None:
        """Append a sentence: words spaced, punctuation attached, first letter capitalised."""
        text_parts: list[Piece] = []
        for word, cat in pieces:
            if cat == "conj":
                text_parts.append((word if word.startswith(",") else word, None))
                continue
            if word == "":
                continue
            text_parts.append((word, cat))
        first = True
        text_parts = [p for i, p in enumerate(text_parts)
                      for p in ([("the", None), p] if p[0] in THE_COUNTRIES and (i == 0 or text_parts[i - 1][0].lower() != "the") else [p])]
        for word, cat in text_parts:
            if word in ".!?," or word.startswith(","):
                piece = word if word in ".!?," else word
                self.doc.add(piece if word in ".!?," else ",", None)
                if word.startswith(",") and len(word) > 1:
                    self.doc.add(" " + word[1:].strip(), None)
                continue
            if cat == "number" and word[0] in "$£":  # the currency sign is not the number
                self.doc.add(" " if self.doc.text and not self.doc.text.endswith((" ", "\n", "\"")) else "")
                self.doc.add(word[0])
                self.doc.add(word[1:], cat)
                first = False
                continue
            if first:
                word = word[0].upper() + word[1:]
                if not (self.doc.text == "" or self.doc.text.endswith(("\n", "\"", " "))):
                    self.doc.add(" ")
                first = False
            else:
                self.doc.add(" ")
            self.doc.add(word, cat)

    def write(self, template: str, **fixed: tuple[str, str]) -> None:
        """Fill `template`: `{color}` draws a color word; `{x}` with x in `fixed` uses that word with its category."""
        rest = template
        while rest:
            i = rest.find("{")
            if i < 0:
                self.doc.add(rest)
                break
            self.doc.add(rest[:i])
            j = rest.index("}", i)
            slot = rest[i + 1 : j]
            if slot in fixed:
                word, category = fixed[slot]
            else:
                category = slot.rstrip("0123456789")
                word = self.pick(category)
            if word in THE_COUNTRIES and not self.doc.text.lower().endswith("the "):
                self.doc.add("The " if i == 0 and not self.doc.text.strip() or self.doc.text.endswith((". ", "\" ", "\n")) else "the ")
            if i == 0 and not self.doc.text.strip() or self.doc.text.endswith((". ", "? ", "! ", "\" ", "\n")):
                word = word[0].upper() + word[1:]
            self.doc.add(word, category)
            rest = rest[j + 1 :]
