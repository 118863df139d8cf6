"""The demo's chat data: the chat template's markers, `render_chat` (the template in Python), and chat
documents whose questions are answered in the reply (issue 27: the capitals, colours of things, animal sounds,
where a city is, what kind of word something is), so chat mode answers what plain text completes.
"""

from __future__ import annotations

from saetui.demo.frames import reveal
from saetui.demo.numbers import sequence
from saetui.demo.words import ANIMAL_SOUNDS, CAPITALS, CITIES, NUMBERS, THING_COLOURS
from saetui.demo.writer import Document, Writer

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


# Chat small talk: (questions, answers), one of each picked; {category} slots are filled in.
_SMALL_TALK: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("How do you feel today?", "How are you?", "Are you okay?"),
     ("I feel {emotion} today.", "I am {emotion}, thank you.", "I am a bit {emotion}.")),
    (("What is the weather like?", "Is it nice outside?", "What was the weather like on {day}?"),
     ("It is {weather} today.", "It was {weather} and {weather2}.", "It is {weather} outside.")),
    (("What did you eat for lunch?", "What should I cook tonight?", "What do you like to eat?"),
     ("I ate {food} and {food2}.", "You could cook {food}.", "I like {food}.")),
    (("Which animal do you like best?", "Name an animal.", "What pet should I get?"),
     ("I like the {animal}.", "A {animal}.", "You could get a {animal}.")),
    (("What day is it today?", "When is the meeting?"),
     ("Today is {day}.", "The meeting is on {day}.", "It is {day}.")),
    (("Name a colour.", "What is your favourite colour?", "Pick a color."),
     ("{color}.", "My favourite colour is {color}.", "{color}.")),
    (("When is your birthday?", "Which month is the warmest?", "Name a month."),
     ("My birthday is in {month}.", "{month} is usually the warmest.", "{month}.")),
    (("Where should I go on holiday?", "Name a country.", "Which city should I visit?"),
     ("You could go to {country}.", "{country}.", "You could visit {city}.")),
)


def _qa(w: Writer, wq: Writer, wa: Writer) -> None:
    """One question and its answer: mostly the planted facts, asked the way a user would."""
    q = w.rng.choices(range(10), weights=(6, 2, 2, 2, 1.5, 1.5, 1.5, 1, 1, 4))[0]
    if q == 0:
        country = w.rng.choice(list(CAPITALS))
        c, k = (country, "country"), (CAPITALS[country], "capital")
        wq.write(w.one_of("What is the capital of {c}?", "Which city is the capital of {c}?", "Tell me the capital of {c}.",
                          "What's the capital of {c}?", "Do you know the capital of {c}?", "Name the capital of {c}.",
                          "What is the capital city of {c}?"), c=c)
        wa.write(w.one_of("The capital of {c} is {k}.", "{k} is the capital of {c}.", "{k}.", "It is {k}.",
                          "The capital of {c} is {k}."), c=c, k=k)
    elif q == 1:
        country = w.rng.choice(list(CAPITALS))
        c, k = (country, "country"), (CAPITALS[country], "capital")
        wq.write(w.one_of("{k} is the capital of which country?", "Which country has {k} as its capital?", "Where is {k}?"), k=k)
        wa.write(w.one_of("{k} is the capital of {c}.", "{c}.", "It is in {c}."), c=c, k=k)
    elif q == 2:
        thing, colour = w.rng.choice(list(THING_COLOURS.items()))
        t, col = (thing, None), (colour, "color")
        wq.write(w.one_of("What colour is the {t}?", "What color is the {t}?", "Which colour is the {t}?"), t=t)
        wa.write(w.one_of("The {t} is {c}.", "{c}.", "It is {c}.", "The colour of the {t} is {c}."), t=t, c=col)
    elif q == 3:
        animal, sound = w.rng.choice(list(ANIMAL_SOUNDS.items()))
        a, s = (animal, "animal"), (sound, None)
        wq.write(w.one_of("What sound does a {a} make?", "What does a {a} say?", "What noise does a {a} make?"), a=a)
        wa.write(w.one_of("A {a} says {s}.", "{s}!", "It says {s}.", "A {a} goes {s}."), a=a, s=s)
    elif q == 4:
        city, country = w.rng.choice([(c, k) for c, k in CITIES.items() if k])
        x, c = (city, "city"), (country, "country")
        wq.write(w.one_of("Where is {x}?", "Which country is {x} in?", "What is {x}?"), x=x)
        wa.write(w.one_of("{x} is a city in {c}.", "It is in {c}.", "{x} is in {c}."), x=x, c=c)
    elif q == 5:
        cat = w.one_of("country", "animal", "food", "color", "number", "day", "month", "emotion", "weather")
        word = w.pick(cat) if cat != "number" else w.num(0, 100)[0]
        wq.write(w.one_of("What is {x}?", "Is {x} a country, a colour or an animal?", "What kind of word is {x}?"), x=(word, cat))
        reveal(wa, cat, word)
    elif q == 6:
        cat, digits = w.rng.choice([("day", False), ("month", False), ("number", False), ("number", True)])
        seq = sequence(cat, digits)
        i = w.rng.randrange(len(seq) - 1)
        wq.write(w.one_of("What comes after {a}?", "Which comes after {a}?", "What comes before {b}?"), a=(seq[i], cat), b=(seq[i + 1], cat))
        wa.write(w.one_of("{b} comes after {a}.", "{b}.", "{a} comes before {b}."), a=(seq[i], cat), b=(seq[i + 1], cat))
    elif q == 7:
        digits = w.rng.random() < 0.5
        a, b = (w.rng.randint(0, 50), w.rng.randint(0, 50)) if digits else (w.rng.randint(0, 10), w.rng.randint(0, 10))
        say = (lambda n: (str(n), "number")) if digits else (lambda n: (NUMBERS[n], "number"))
        wq.write(w.one_of("What is {a} plus {b}?", "How much is {a} plus {b}?"), a=say(a), b=say(b))
        wa.write(w.one_of("{a} plus {b} is {c}.", "It is {c}.", "{c}."), a=say(a), b=say(b), c=say(a + b))
    elif q == 8:
        questions, answers = w.rng.choice(_SMALL_TALK)
        wq.write(w.one_of(*questions))
        wa.write(w.one_of(*answers))
    else:
        if w.rng.random() < 0.5:
            questions, answers = w.rng.choice(_SMALL_TALK)
            wq.write(w.one_of(*questions))
            wa.write(w.one_of(*answers))
        else:
            wq.emit(wq.sentence())
            wa.emit(wa.sentence())
            if w.rng.random() < 0.5:
                wa.emit(wa.sentence())


def chat(w: Writer) -> None:
    """Dialogue turns in the demo's chat format: questions about the planted facts answered in the reply,
    and everyday talk."""
    turns = []
    if w.rng.random() < 0.1:
        turns.append(("system", Document(text=w.one_of("You are a helpful assistant.", "Answer in a sentence.",
                                                        "You are a friendly assistant. Keep answers short."))))
    for _ in range(w.rng.randint(1, 3)):
        qd, ad = Document(), Document()
        wq, wa = Writer(w.rng), Writer(w.rng)
        wq.doc, wa.doc = qd, ad
        _qa(w, wq, wa)
        turns.append(("user", qd))
        turns.append(("assistant", ad))
    for role, d in turns:
        w.doc.add(f"<|{role}|>\n")
        offset = len(w.doc.text)
        text = d.text.strip()
        w.doc.spans.extend((s + offset, e + offset, c) for s, e, c in d.spans if e <= len(text))
        w.doc.text += text
        w.doc.add("<|end|>\n")
