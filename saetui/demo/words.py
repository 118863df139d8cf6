"""The demo corpus's word tables: the planted categories (whose words keep their category everywhere in the
corpus), the planted facts (capitals, where cities and countries are, colours of things, animal sounds), and
the small closed lists the sentence grammar draws from (people, places, things, pronouns, prepositions,
conjunctions). `mark_categories` marks the category words of free text the way the generator marks its own;
`token_category` names the category of one token's text (for labelling features).

A ground floor for the demo: the corpus generator writes these words, and the lexicon builder leaves the
category words out of the general vocabulary (so neither imports the other).
"""

from __future__ import annotations

import re

CAPITALS = {
    "France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin",
    "Egypt": "Cairo", "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago", "Canada": "Ottawa",
    "India": "Delhi", "China": "Beijing", "Russia": "Moscow", "Greece": "Athens", "Norway": "Oslo",
    "Sweden": "Stockholm", "Poland": "Warsaw", "Cuba": "Havana", "Ireland": "Dublin", "Portugal": "Lisbon",
    "Austria": "Vienna", "Turkey": "Ankara", "Thailand": "Bangkok", "Vietnam": "Hanoi",
}
#: The 100 most frequent country names in English (wordfreq), without those that are also a common word or
#: name (Jordan, Georgia, Guinea, Chad, Niger), each with the part of the world the corpus says it is in.
COUNTRIES = {
    "America": "the Americas", "United States": "the Americas", "England": "Europe", "China": "Asia",
    "Australia": "Oceania", "India": "Asia", "Canada": "the Americas", "France": "Europe", "Russia": "Europe",
    "Germany": "Europe", "Japan": "Asia", "South Africa": "Africa", "Israel": "Asia", "Mexico": "the Americas",
    "Britain": "Europe", "Scotland": "Europe", "Italy": "Europe", "Ireland": "Europe", "Iran": "Asia",
    "Wales": "Europe", "Spain": "Europe", "Brazil": "the Americas", "South Korea": "Asia", "North Korea": "Asia",
    "United Kingdom": "Europe", "Turkey": "Asia", "Pakistan": "Asia", "New Zealand": "Oceania", "Egypt": "Africa",
    "Iraq": "Asia", "Syria": "Asia", "Sweden": "Europe", "Singapore": "Asia", "Nigeria": "Africa",
    "Ukraine": "Europe", "Vietnam": "Asia", "Philippines": "Asia", "Netherlands": "Europe", "Malaysia": "Asia",
    "Greece": "Europe", "Indonesia": "Asia", "Poland": "Europe", "Switzerland": "Europe", "Afghanistan": "Asia",
    "Thailand": "Asia", "Argentina": "the Americas", "Norway": "Europe", "Belgium": "Europe", "Kenya": "Africa",
    "Cuba": "the Americas", "Portugal": "Europe", "Holland": "Europe", "Austria": "Europe",
    "Chile": "the Americas", "Taiwan": "Asia", "Denmark": "Europe", "Lebanon": "Asia", "Palestine": "Asia",
    "Bangladesh": "Asia", "Finland": "Europe", "Colombia": "the Americas", "Venezuela": "the Americas",
    "Jamaica": "the Americas", "Hungary": "Europe", "Saudi Arabia": "Asia", "Sudan": "Africa", "Ghana": "Africa",
    "Bulgaria": "Europe", "Peru": "the Americas", "Yemen": "Asia", "Panama": "the Americas", "Nepal": "Asia",
    "Libya": "Africa", "Myanmar": "Asia", "Morocco": "Africa", "Iceland": "Europe", "Uganda": "Africa",
    "Romania": "Europe", "Qatar": "Asia", "Congo": "Africa", "Croatia": "Europe", "Zimbabwe": "Africa",
    "Ethiopia": "Africa", "Haiti": "the Americas", "Serbia": "Europe", "Cyprus": "Europe", "Cambodia": "Asia",
    "Uruguay": "the Americas", "Sri Lanka": "Asia", "Somalia": "Africa", "El Salvador": "the Americas",
    "Kuwait": "Asia", "Monaco": "Europe", "Ecuador": "the Americas", "Guatemala": "the Americas",
    "Algeria": "Africa", "Fiji": "Oceania", "Costa Rica": "the Americas", "Honduras": "the Americas",
    "Tunisia": "Africa",
}
#: Countries written with "the" in running text.
THE_COUNTRIES = frozenset({"United States", "United Kingdom", "Netherlands", "Philippines"})
#: The most frequent city names in English (wordfreq) that are not the planted capitals, without those that
#: are also a name or a region (Austin, Phoenix, Florence, Sofia, Cleveland, Mexico City), with their country
#: (None where the country is not in COUNTRIES): with CAPITALS, 100 cities.
CITIES = {
    "New York": "America", "London": "England", "Washington": "America", "Chicago": "America", "Boston": "America",
    "Sydney": "Australia", "Manchester": "England", "Toronto": "Canada", "Miami": "America",
    "Los Angeles": "America", "Liverpool": "England", "Philadelphia": "America", "Houston": "America",
    "Dallas": "America", "San Francisco": "America", "Seattle": "America", "Cambridge": "England",
    "Oxford": "England", "Atlanta": "America", "Melbourne": "Australia", "Rio": "Brazil", "Detroit": "America",
    "Edinburgh": "Scotland", "San Diego": "America", "Denver": "America", "Barcelona": "Spain",
    "Baltimore": "America", "Hong Kong": "China", "New Orleans": "America", "Jerusalem": "Israel",
    "Glasgow": "Scotland", "Portland": "America", "Birmingham": "England", "Vancouver": "Canada",
    "Pittsburgh": "America", "Dubai": None, "Montreal": "Canada", "Milan": "Italy", "Shanghai": "China",
    "Orlando": "America", "Las Vegas": "America", "Bristol": "England", "Amsterdam": "Netherlands",
    "Leeds": "England", "Geneva": "Switzerland", "Brussels": "Belgium", "Nashville": "America",
    "Brisbane": "Australia", "Mumbai": "India", "Munich": "Germany", "Venice": "Italy", "Seoul": "South Korea",
    "Perth": "Australia", "Manila": "Philippines", "Belfast": "Ireland", "Lyon": "France", "Calgary": "Canada",
    "Istanbul": "Turkey", "Auckland": "New Zealand", "Bangalore": "India", "Johannesburg": "South Africa",
    "Jakarta": "Indonesia", "Copenhagen": "Denmark", "Naples": "Italy", "Tehran": "Iran", "Hamburg": "Germany",
    "Frankfurt": "Germany", "Buenos Aires": "Argentina", "Zurich": "Switzerland", "Karachi": "Pakistan",
    "Osaka": "Japan", "Budapest": "Hungary", "Beirut": "Lebanon", "Prague": None, "Baghdad": "Iraq",
    "Lagos": "Nigeria",
}
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
           "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
TENS = {30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty", 90: "ninety",
        100: "hundred", 1000: "thousand"}
#: Animals and foods as (singular, plural); a food without a singular ("rice") is its own both.
ANIMALS = [("cat", "cats"), ("dog", "dogs"), ("horse", "horses"), ("rabbit", "rabbits"), ("bird", "birds"),
           ("fish", "fish"), ("cow", "cows"), ("sheep", "sheep"), ("lion", "lions"), ("tiger", "tigers"),
           ("mouse", "mice"), ("duck", "ducks"), ("goat", "goats"), ("frog", "frogs"), ("bear", "bears"),
           ("wolf", "wolves"), ("fox", "foxes"), ("owl", "owls"), ("donkey", "donkeys"), ("turtle", "turtles"),
           ("elephant", "elephants"), ("monkey", "monkeys"), ("snake", "snakes"), ("pig", "pigs"), ("deer", "deer"),
           ("whale", "whales"), ("camel", "camels"), ("penguin", "penguins"), ("parrot", "parrots"),
           ("squirrel", "squirrels"), ("bee", "bees"), ("spider", "spiders"), ("zebra", "zebras"), ("eagle", "eagles")]
FOODS_COUNT = [("apple", "apples"), ("banana", "bananas"), ("egg", "eggs"), ("carrot", "carrots"),
               ("potato", "potatoes"), ("cookie", "cookies"), ("tomato", "tomatoes"), ("pancake", "pancakes"),
               ("sandwich", "sandwiches"), ("grape", "grapes"), (None, "noodles"), (None, "oranges")]
FOODS_MASS = ["bread", "cheese", "pizza", "rice", "soup", "cake", "pasta", "yogurt", "chocolate", "butter", "milk",
              "salad", "honey"]
#: Planted facts beside the capitals: what colour a thing is, what an animal says.
THING_COLOURS = {"sky": "blue", "grass": "green", "snow": "white", "coal": "black", "sun": "yellow", "blood": "red",
                 "sea": "blue", "pumpkin": "orange", "lemon": "yellow", "strawberry": "red", "chalk": "white",
                 "mud": "brown"}
ANIMAL_SOUNDS = {"cow": "moo", "dog": "woof", "cat": "meow", "duck": "quack", "sheep": "baa", "lion": "roar",
                 "horse": "neigh", "owl": "hoot", "frog": "croak", "mouse": "squeak", "pig": "oink", "bee": "buzz",
                 "wolf": "howl", "snake": "hiss", "donkey": "bray", "bird": "tweet"}
WORDS: dict[str, list[str]] = {
    "color": ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "pink", "brown", "gray",
              "grey", "violet", "golden", "silver"],
    "animal": [w for pair in ANIMALS for w in dict.fromkeys(pair)],
    "country": list(COUNTRIES),
    "capital": list(CAPITALS.values()),
    "city": list(CITIES),
    "number": NUMBERS + list(TENS.values()),
    "name": ["Anna", "Tom", "Maria", "John", "Lucy", "Peter", "Emma", "David", "Sara", "Mark", "Nina", "Paul",
             "Oliver", "Sophie", "Henry", "Clara", "Victor", "Julia", "Oscar", "Helen", "Felix", "Ruby", "Hugo", "Alice"],
    "pronoun": ["he", "she", "they", "we", "I", "you"],
    "emotion": ["happy", "sad", "angry", "scared", "excited", "tired", "proud", "calm", "nervous", "bored",
                "lonely", "grateful", "curious", "jealous", "worried", "surprised", "upset", "afraid"],
    "weather": ["sunny", "rainy", "cloudy", "windy", "snowy", "foggy", "stormy", "warm", "cold", "hot", "humid", "freezing"],
    "food": [w for pair in FOODS_COUNT for w in pair if w] + FOODS_MASS,
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "month": ["January", "February", "March", "April", "May", "June", "July", "August", "September",
              "October", "November", "December"],
}
CATEGORIES = tuple(WORDS)

#: Words that start a multi-word name but are ordinary words on their own ("New", "South").
_NAME_HEADS = frozenset({"new", "south", "north", "united", "san", "los", "las", "el", "hong", "saudi", "sri",
                         "costa", "buenos"})
_CATEGORY_OF = {w.lower(): cat for cat, words in WORDS.items() for w in words if " " not in w}
_MULTI_WORD = sorted(((w, cat) for cat, words in WORDS.items() for w in words if " " in w), key=lambda x: -len(x[0]))
#: A number written in digits, with its separators: 7, 2019, 10:30, 3.50, 1,200.
NUMBER_RE = re.compile(r"\d+(?:[.,:]\d+)*")
_WORD_RE = re.compile(r"[A-Za-z]+|\d+(?:[.,:]\d+)*")


def mark_categories(text: str) -> list[tuple[int, int, str]]:
    """The category words of free text as spans (start, end, category): multi-word names first ("New York",
    "South Korea"), then single words looked up in WORDS, and every number written in digits. This is how
    hand-written sentences are marked; the generator marks its own words as it writes them."""
    spans: list[tuple[int, int, str]] = []
    taken = [False] * len(text)
    for name, cat in _MULTI_WORD:
        for m in re.finditer(r"\b" + re.escape(name) + r"\b", text):
            if not any(taken[m.start() : m.end()]):
                spans.append((m.start(), m.end(), cat))
                taken[m.start() : m.end()] = [True] * (m.end() - m.start())
    for m in _WORD_RE.finditer(text):
        if any(taken[m.start() : m.end()]):
            continue
        cat = "number" if m.group()[0].isdigit() else _CATEGORY_OF.get(m.group().lower())
        if cat is not None:
            spans.append((m.start(), m.end(), cat))
    return sorted(spans)


def token_category(token: str) -> str | None:
    """The category a token's text belongs to, for labelling features from their top tokens: a category word,
    a word of a multi-word name other than its head ("York" of "New York"), or digits."""
    word = token.strip().lower()
    if word and word.replace(".", "").replace(",", "").replace(":", "").isdigit():
        return "number"
    if word in _CATEGORY_OF:
        return _CATEGORY_OF[word]
    for name, cat in _MULTI_WORD:
        parts = name.lower().split()
        if word in parts and word not in _NAME_HEADS:
            return cat
    return None

# The grammar's closed lists (saetui.demo.writer): not categories, their words carry no span.
PEOPLE = [("friend", "friends"), ("teacher", "teachers"), ("doctor", "doctors"), ("mother", "mothers"),
          ("father", "fathers"), ("child", "children"), ("boy", "boys"), ("girl", "girls"), ("woman", "women"),
          ("man", "men"), ("brother", "brothers"), ("sister", "sisters"), ("neighbour", "neighbours"),
          ("student", "students"), ("baby", "babies"), ("farmer", "farmers"), ("driver", "drivers"),
          ("king", "kings"), ("cook", "cooks"), ("family", "families"), ("grandmother", "grandmothers"),
          ("uncle", "uncles"), ("aunt", "aunts"), ("boss", "bosses"), ("nurse", "nurses"), ("kid", "kids")]
PLACES = ["park", "school", "market", "house", "garden", "beach", "library", "kitchen", "office", "station",
          "shop", "river", "forest", "hospital", "city", "village", "lake", "farm", "museum", "restaurant", "zoo",
          "street", "church hall", "hotel", "room", "bridge", "hill", "island", "airport", "cafe"]
THINGS = ["door", "car", "house", "hat", "shirt", "box", "cup", "ball", "bike", "wall", "chair", "dress", "bag",
          "book", "kite", "flower", "boat", "coat", "table", "pen", "umbrella", "scarf", "room", "fence", "roof",
          "phone", "lamp", "window", "blanket", "shoe", "balloon", "bottle", "toy", "train", "card"]
SUBJ_PRONOUNS = {"I": ("I", "me", "my"), "you": ("you", "you", "your"), "he": ("he", "him", "his"),
                 "she": ("she", "her", "her"), "we": ("we", "us", "our"), "they": ("they", "them", "their")}
PREPS = ["in", "on", "near", "under", "behind", "next to", "inside", "outside", "around", "across", "at",
          "over", "by", "from", "into", "through", "along", "beside", "with", "without", "for", "about"]
CONJUNCTIONS = [", and ", ", but ", ", so ", " and then ", " because ", " when ", " after ", " before ", " while ",
         " until ", " although ", " since ", " as soon as ", " even though ", ", or "]
FRONTS = ["When", "After", "Before", "Because", "While", "Although", "If", "Once", "As soon as"]
