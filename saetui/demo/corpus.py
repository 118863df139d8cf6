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
from dataclasses import dataclass, field

CAPITALS = {
    "France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin",
    "Egypt": "Cairo", "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago", "Canada": "Ottawa",
    "India": "Delhi", "China": "Beijing", "Russia": "Moscow", "Greece": "Athens", "Norway": "Oslo",
    "Sweden": "Stockholm", "Poland": "Warsaw", "Cuba": "Havana", "Ireland": "Dublin", "Portugal": "Lisbon",
    "Austria": "Vienna", "Turkey": "Ankara", "Thailand": "Bangkok", "Vietnam": "Hanoi",
}
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
           "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
WORDS: dict[str, list[str]] = {
    "color": ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "pink", "brown", "gray",
              "violet", "golden", "silver"],
    "animal": ["cat", "dog", "horse", "rabbit", "bird", "fish", "cow", "sheep", "lion", "tiger", "mouse", "duck",
               "goat", "frog", "bear", "wolf", "fox", "owl", "donkey", "turtle"],
    "country": list(CAPITALS),
    "capital": list(CAPITALS.values()),
    "number": NUMBERS,
    "name": ["Anna", "Tom", "Maria", "John", "Lucy", "Peter", "Emma", "David", "Sara", "Mark", "Nina", "Paul",
             "Oliver", "Sophie", "Henry", "Clara", "Victor", "Julia", "Oscar", "Helen", "Felix", "Ruby", "Hugo", "Alice"],
    "pronoun": ["he", "she", "they", "we", "I", "you"],
    "emotion": ["happy", "sad", "angry", "scared", "excited", "tired", "proud", "calm", "nervous", "bored",
                "lonely", "grateful", "curious", "jealous"],
    "weather": ["sunny", "rainy", "cloudy", "windy", "snowy", "foggy", "stormy", "warm", "cold", "hot", "humid", "freezing"],
    "food": ["bread", "cheese", "apples", "pizza", "rice", "soup", "cake", "pasta", "bananas", "eggs", "noodles",
             "carrots", "potatoes", "cookies", "oranges", "tomatoes", "yogurt", "pancakes", "sandwiches", "grapes"],
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "month": ["January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"],
}
CATEGORIES = tuple(WORDS)


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


class _Writer:
    """Builds one document from templates whose slots are `{category}` names."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.doc = Document()

    def pick(self, category: str) -> str:
        return self.rng.choice(WORDS[category])

    def write(self, template: str, **fixed: str) -> None:
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
                word, category = fixed[slot]  # type: ignore[misc]
            else:
                category = slot.rstrip("0123456789")
                word = self.pick(category)
            if i == 0 and not self.doc.text.strip() or self.doc.text.endswith((". ", "\" ")):
                word = word[0].upper() + word[1:]
            self.doc.add(word, category)
            rest = rest[j + 1 :]


def _capital_fact(w: _Writer) -> None:
    country = w.rng.choice(list(CAPITALS))
    pair = dict(country=(country, "country"), capital=(CAPITALS[country], "capital"))
    template = w.rng.choice([
        "The capital of {country} is {capital}. ",
        "{capital} is the capital of {country}. ",
        "{name} lives in {capital}, the capital of {country}. ",
        "{name} flew to {country} and visited {capital}. ",
    ])
    w.write(template, **pair)


def _arithmetic(w: _Writer) -> None:
    a, b = w.rng.randint(0, 10), w.rng.randint(0, 10)
    if w.rng.random() < 0.6:
        w.write("{a} plus {b} is {c}. ", a=(NUMBERS[a], "number"), b=(NUMBERS[b], "number"), c=(NUMBERS[a + b], "number"))
    else:
        a, b = max(a, b), min(a, b)
        w.write("{a} minus {b} is {c}. ", a=(NUMBERS[a], "number"), b=(NUMBERS[b], "number"), c=(NUMBERS[a - b], "number"))


def _story(w: _Writer) -> None:
    name = (w.pick("name"), "name")
    animal = (w.pick("animal"), "animal")
    for template in w.rng.sample([
        "{name} has a {color} {animal}. ",
        "The {animal} is {emotion} today. ",
        "On {day} the weather was {weather}. ",
        "{name} likes to eat {food}. ",
        "In {month} it is often {weather}. ",
        "{name} saw a {color} {animal2} in the park. ",
        "{pronoun} felt {emotion} because it was {weather}. ",
        "For lunch {name} made {food} and {food2}. ",
        "{name} painted the door {color}. ",
    ], k=w.rng.randint(2, 5)):
        w.write(template, name=name, animal=animal)


def _dialogue(w: _Writer) -> None:
    name = (w.pick("name"), "name")
    for template in w.rng.sample([
        "\"I feel {emotion},\" said {name}. ",
        "\"Do you like {food}?\" asked {name}. ",
        "\"Yes, I love {food},\" said {name2}. ",
        "\"Look at the {color} {animal}!\" said {name}. ",
        "\"It is {weather} today,\" said {name2}. ",
        "\"See you on {day},\" said {name}. ",
    ], k=w.rng.randint(2, 4)):
        w.write(template, name=name)


def _listing(w: _Writer) -> None:
    template = w.rng.choice([
        "My favorite colors are {color}, {color2} and {color3}. ",
        "We bought {food}, {food2} and {food3}. ",
        "The farm has a {animal}, a {animal2} and a {animal3}. ",
        "We visited {country}, {country2} and {country3}. ",
        "The class starts on {day} and ends on {day2}. ",
        "Count with me: {number}, {number2}, {number3}. ",
        "Our trip is in {month}, not in {month2}. ",
    ])
    w.write(template)


_KINDS = [(_capital_fact, 3), (_arithmetic, 2), (_story, 4), (_dialogue, 2), (_listing, 2)]


def generate_document(rng: random.Random) -> Document:
    """One document of 2-5 parts (facts, sums, story lines, dialogue, lists)."""
    w = _Writer(rng)
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
