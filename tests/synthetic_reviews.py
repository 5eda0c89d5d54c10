"""A synthetic review corpus with one hidden polarity per review, for the sentiment-neuron emergence control.

Every opinion word of a review follows its polarity, and each opinion is followed by a neutral sentence, the last one too, so the
polarity can be read from the final state only by a model that learned to carry it (a random network forgets
it within a few dozen bytes). Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

POSITIVE = ["great", "wonderful", "superb", "brilliant", "lovely", "moving", "delightful", "excellent"]
NEGATIVE = ["awful", "terrible", "dull", "boring", "clumsy", "tedious", "dreadful", "lifeless"]
LIKE = {1: ["loved", "enjoyed", "admired", "liked"], 0: ["hated", "disliked", "loathed", "regretted"]}
SUBJECTS = ["the acting", "the script", "the music", "the ending", "the cast", "the story", "the camera work",
            "the dialogue", "the pacing", "the lead"]
PHRASES = ["{a} {s}", "{s} was {a}", "i {v} {s}", "{a} film", "{a}"]
OPINION = ["{s} was {a} .", "{s} is {a} .", "i {v} {s} .", "a {a} film .", "what a {a} movie .",
           "{s} felt {a} .", "simply {a} ."]
NOUNS = ["detective", "farmer", "pilot", "teacher", "sailor", "doctor", "painter", "miner", "soldier", "chef",
         "widow", "banker", "monk", "clerk", "boxer", "singer", "thief", "nurse", "judge", "diver"]
PLACES = ["paris", "a small town", "tokyo", "the desert", "a ship", "the mountains", "berlin", "a prison", "lagos",
          "the suburbs", "a farm", "rome", "an island", "the arctic", "cairo", "a hospital", "texas", "a train"]
NEUTRAL = ["row {d}", "a {n} in {p}", "{d} minutes", "seen on day {d}", "with a {n}", "set in {p}",
           "a {n} and a {n}", "{d} scenes"]


def _neutral(rng: np.random.Generator) -> str:
    # Random slots make the neutral text unpredictable, so only a state held on purpose survives it.
    t = NEUTRAL[rng.integers(len(NEUTRAL))]
    while "{n}" in t or "{p}" in t:
        t = t.replace("{n}", NOUNS[rng.integers(len(NOUNS))], 1).replace("{p}", PLACES[rng.integers(len(PLACES))], 1)
    return t.replace("{d}", str(rng.integers(10, 1000)))


def review(rng: np.random.Generator, polarity: int) -> str:
    """One review: 5-8 short opinion phrases, some followed by a short neutral phrase, then 1-2 neutral phrases."""
    words = POSITIVE if polarity else NEGATIVE
    out = []
    for _ in range(rng.integers(5, 9)):
        t = PHRASES[rng.integers(len(PHRASES))]
        out.append(t.format(s=SUBJECTS[rng.integers(len(SUBJECTS))], a=words[rng.integers(len(words))],
                            v=LIKE[polarity][rng.integers(4)]))
        if rng.random() < 0.3:
            out.append(_neutral(rng))
    out += [_neutral(rng) for _ in range(rng.integers(1, 3))]
    return " , ".join(out) + " ."


def reviews(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """n reviews with balanced random polarities (1 = positive) and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n).astype(np.int32)
    return [review(rng, int(y)) for y in labels], labels
