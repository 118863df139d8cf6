"""The demo's planted categories: the word lists whose words keep their category everywhere in the corpus.

A ground floor for the demo: the corpus generator writes these words with their spans, and the lexicon builder
leaves them out of the general vocabulary (so neither imports the other).
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
