"""The demo corpus's word tables: the planted categories (whose words keep their category everywhere in the
corpus) and the small closed lists the sentence grammar draws from (people, places, things, pronouns,
prepositions, conjunctions).

A ground floor for the demo: the corpus generator writes these words, and the lexicon builder leaves the
category words out of the general vocabulary (so neither imports the other).
"""

from __future__ import annotations

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
          "sky", "sea", "phone", "lamp", "window", "blanket", "shoe", "balloon", "bottle", "toy", "train", "card"]
SUBJ_PRONOUNS = {"I": ("I", "me", "my"), "you": ("you", "you", "your"), "he": ("he", "him", "his"),
                 "she": ("she", "her", "her"), "we": ("we", "us", "our"), "they": ("they", "them", "their")}
PREPS = ["in", "on", "near", "under", "behind", "next to", "inside", "outside", "around", "across", "at",
          "over", "by", "from", "into", "through", "along", "beside", "with", "without", "for", "about"]
CONJUNCTIONS = [", and ", ", but ", ", so ", " and then ", " because ", " when ", " after ", " before ", " while ",
         " until ", " although ", " since ", " as soon as ", " even though ", ", or "]
FRONTS = ["When", "After", "Before", "Because", "While", "Although", "If", "Once", "As soon as"]
