"""The fixed, seed-derived content of a synthetic world: knowledge base, lexicon, pools.

Everything is generated from `World(seed)` with numpy's PCG64, so the same seed gives
the same entities, facts and synthetic-language words on every machine.

Sizes and difficulty knobs live in `WorldConfig`; its defaults are chosen so that a
~1-3 M-parameter character-level decoder can learn every capability on a laptop CPU
(short prompts, short answers, small memorised tables); see the module docs of
`read_jax.worlds` for the reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from read_jax.errors import ReadJaxError

# bump when the generators change what a (seed, WorldConfig) produces: recipe checkpoints are keyed by it
WORLD_VERSION = 2

CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
# entity names start with distinct letters, so one character identifies an entity
ENTITY_INITIALS = "bcdfghjklmnpqrstvwxyz"

ATTRIBUTES = ("city", "color", "pet", "age")
COLORS = ("red", "blue", "green", "pink", "gray", "gold", "teal", "black")
PETS = ("cat", "dog", "owl", "fox", "bee", "cow", "yak", "eel")
NOUNS = (
    "sun", "moon", "tree", "fish", "bird", "rock", "rain", "fire", "milk", "king", "ship", "road",
    "hand", "star", "snow", "wind", "book", "door", "lamp", "boat", "cake", "wolf", "leaf", "hill",
)
OP_WORDS = ("plus", "minus")
DAYS = ("today", "tmrw", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
UNITS = ("s", "min", "h")
CURRENCIES = ("usd", "eur", "yen", "gbp")
STEER_OPS = ("upper", "rev", "wrap", "twice")
ZL = "zl"  # name of the synthetic language
EN = "en"


@dataclass(frozen=True)
class WorldConfig:
    """Difficulty knobs.  Defaults are the learnable setting (see read_jax.worlds)."""

    # general_knowledge: a KB of n_entities x 4 attributes; popularity ∝ (rank + 4)^-zipf
    n_entities: int = 16
    n_cities: int = 8
    entity_zipf: float = 1.0
    # steerability: word length range, up to steer_max_ops chained formatting ops
    steer_word_len: tuple[int, int] = (3, 6)
    steer_max_ops: int = 2
    # "random": words of random letters (copying them needs induction heads, slow to learn on a CPU);
    # "nouns": the words are the world's nouns (the model can learn each word's formatted forms)
    steer_words: str = "random"
    # reasoning: "chains" = chains of `reasoning_items` entities ordered by ">" facts given in the prompt
    # (order, extremes, transitive comparisons); "kb" = two-hop questions over the knowledge base
    # (who is older, do two entities share a city).  Both need binding facts to entities; "chains"
    # binds within the prompt, which a small model on a CPU learns far more slowly (see README).
    reasoning_style: str = "chains"
    reasoning_items: tuple[int, int] = (3, 4)
    # math: operands with 1..math_max_digits digits (+, -), single digits for *
    math_max_digits: int = 2
    # code: lists of single digits, expressions of depth 1..code_max_depth
    code_list_len: tuple[int, int] = (2, 4)
    code_max_depth: int = 2
    # tool_use: numeric arguments 1..tool_max_number
    tool_max_number: int = 60
    # long_context: number of key=value pairs in the context; letters per key (1-letter keys match in
    # one token, which a small model learns far sooner than matching two-letter keys)
    lc_pairs: tuple[int, int] = (2, 4)
    lc_key_len: int = 2
    # "keys": arbitrary keys with noun values (associative recall); "fields": a record of named fields
    # (name, city, pet, color, age, day) in random order, each value of its field's type
    lc_style: str = "keys"
    # multilingual: 1..n words per phrase; share of numerals among words
    ml_items: tuple[int, int] = (1, 3)
    ml_numeral_prob: float = 0.3
    # composite tasks
    scratchpad: bool = True  # answers show the intermediate result ("12+5=17")
    dev_size: int = 64
    test_size: int = 128
    cards_state_requirement: bool = False  # hide the true r from ReAD by default
    # difficulty calibration pool size per capability
    calibration_size: int = 600

    def style(self, capability: str) -> str:
        """The template style a capability uses in this world ("" when it has only one)."""
        return {"reasoning": self.reasoning_style}.get(capability, "")

    @classmethod
    def preset(cls, name: str, **overrides) -> "WorldConfig":
        """Named knob settings: "default"; "tiny" (easiest: for the smallest teachers or the
        shortest training budgets); "hard" (longer contexts, more digits, deeper programs)."""
        presets = {
            "default": {},
            "tiny": dict(steer_word_len=(3, 5), steer_max_ops=1, steer_words="nouns", reasoning_items=(3, 3), math_max_digits=1,
                         code_list_len=(2, 3), code_max_depth=1, tool_max_number=20, lc_pairs=(2, 3), lc_key_len=1, lc_style="fields", reasoning_style="kb",
                         ml_items=(1, 2)),
            "hard": dict(n_entities=20, steer_word_len=(4, 8), steer_max_ops=3, reasoning_items=(4, 6),
                         math_max_digits=3, code_list_len=(3, 6), tool_max_number=999, lc_pairs=(6, 10),
                         ml_items=(2, 4)),
        }
        if name not in presets:
            raise ReadJaxError(f"unknown world preset {name!r}; known: {sorted(presets)}")
        return cls(**{**presets[name], **overrides})

    def __post_init__(self) -> None:
        def rng_ok(name, lo_min):
            lo, hi = getattr(self, name)
            if not (lo_min <= lo <= hi):
                raise ReadJaxError(f"WorldConfig.{name} must satisfy {lo_min} <= lo <= hi, got {(lo, hi)}")
            object.__setattr__(self, name, (int(lo), int(hi)))

        if not (4 <= self.n_entities <= len(ENTITY_INITIALS)):
            raise ReadJaxError(f"n_entities must be in [4, {len(ENTITY_INITIALS)}]")
        if not (3 <= self.n_cities <= 20):
            raise ReadJaxError("n_cities must be in [3, 20]")
        rng_ok("steer_word_len", 1)
        if self.steer_words not in ("random", "nouns"):
            raise ReadJaxError(f"WorldConfig.steer_words must be 'random' or 'nouns', got {self.steer_words!r}")
        rng_ok("reasoning_items", 2)
        rng_ok("code_list_len", 1)
        rng_ok("lc_pairs", 1)
        rng_ok("ml_items", 1)
        if self.reasoning_items[1] > self.n_entities:
            raise ReadJaxError("reasoning_items cannot exceed n_entities")
        for name, allowed in (("reasoning_style", ("chains", "kb")), ("lc_style", ("keys", "fields"))):
            if getattr(self, name) not in allowed:
                raise ReadJaxError(f"WorldConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.lc_key_len not in (1, 2):
            raise ReadJaxError(f"WorldConfig.lc_key_len must be 1 or 2, got {self.lc_key_len}")
        if self.lc_pairs[1] > len(NOUNS):
            raise ReadJaxError(f"lc_pairs cannot exceed {len(NOUNS)}")
        if not (1 <= self.steer_max_ops <= len(STEER_OPS)):
            raise ReadJaxError(f"steer_max_ops must be in [1, {len(STEER_OPS)}]")
        if not (1 <= self.math_max_digits <= 4):
            raise ReadJaxError("math_max_digits must be in [1, 4]")
        if not (1 <= self.code_max_depth <= 2):
            raise ReadJaxError("code_max_depth must be 1 or 2")
        if self.code_list_len[1] > 9:
            raise ReadJaxError("code_list_len upper bound must be <= 9")
        if self.tool_max_number < 1:
            raise ReadJaxError("tool_max_number must be >= 1")
        if not (0.0 <= self.ml_numeral_prob <= 1.0):
            raise ReadJaxError("ml_numeral_prob must be in [0, 1]")
        if self.dev_size < 1 or self.test_size < 1 or self.calibration_size < 30:
            raise ReadJaxError("dev/test sizes must be >= 1 and calibration_size >= 30")


@dataclass(frozen=True)
class WorldData:
    seed: int
    config: WorldConfig
    entities: tuple[str, ...]  # ordered by popularity rank (0 = most popular)
    entity_p: np.ndarray = field(repr=False)
    cities: tuple[str, ...] = ()
    kb: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    en2zl: dict[str, str] = field(default_factory=dict, repr=False)  # nouns, op words, digits "0".."9"
    zl2en: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def rank(self) -> dict[str, int]:
        return {e: i for i, e in enumerate(self.entities)}

    # ------------------------------------------------------------ synthetic language
    def numeral_to_zl(self, n: int) -> str:
        return "-".join(self.en2zl[d] for d in str(int(n)))

    def word_to_zl(self, w: str) -> str:
        if w.isdigit():
            return self.numeral_to_zl(int(w))
        return self.en2zl[w]

    def word_to_en(self, z: str) -> str:
        # a numeral is its digit words joined by "-"; a plain word is one part
        return "".join(self.zl2en[p] for p in z.split("-"))

    def to_zl(self, text: str) -> str:
        return " ".join(self.word_to_zl(w) for w in text.split(" "))

    def to_en(self, text: str) -> str:
        return " ".join(self.word_to_en(z) for z in text.split(" "))


def _word(rng: np.random.Generator, pattern: str) -> str:
    return "".join(CONSONANTS[rng.integers(len(CONSONANTS))] if ch == "C" else VOWELS[rng.integers(len(VOWELS))]
                   for ch in pattern)


def build_world_data(seed: int, config: WorldConfig) -> WorldData:
    rng = np.random.default_rng([int(seed), 0xC0FFEE])
    reserved = set(NOUNS) | set(COLORS) | set(PETS) | set(OP_WORDS) | set(DAYS) | set(UNITS) | set(CURRENCIES)
    reserved |= set(STEER_OPS) | {"max", "min", "len", "sum", "rev", "sort", "yes", "no", ZL, EN}
    used: set[str] = set()

    def fresh(pattern: str, first: str | None = None) -> str:
        for _ in range(10_000):
            w = _word(rng, pattern)
            if first is not None:
                w = first + w[1:]
            if w not in used and w not in reserved:
                used.add(w)
                return w
        raise ReadJaxError(f"could not draw a fresh synthetic word of shape {pattern}")

    initials = list(rng.permutation(list(ENTITY_INITIALS))[: config.n_entities])
    entities = tuple(fresh("CVC", first=str(ch)) for ch in initials)
    cities = tuple(fresh("CVCV") for _ in range(config.n_cities))
    kb = {}
    for e in entities:
        kb[e] = {
            "city": cities[int(rng.integers(len(cities)))],
            "color": COLORS[int(rng.integers(len(COLORS)))],
            "pet": PETS[int(rng.integers(len(PETS)))],
            "age": str(int(rng.integers(12, 90))),
        }
    ranks = np.arange(len(entities), dtype=np.float64)
    p = (ranks + 4.0) ** (-config.entity_zipf)
    p = p / p.sum()

    en2zl: dict[str, str] = {}
    for d in "0123456789":
        en2zl[d] = fresh("CV")
    for w in OP_WORDS:
        en2zl[w] = fresh("CVC")
    for w in NOUNS:
        en2zl[w] = fresh("CVCV")
    zl2en = {z: e for e, z in en2zl.items()}
    return WorldData(seed=int(seed), config=config, entities=entities, entity_p=p, cities=cities,
                     kb=kb, en2zl=en2zl, zl2en=zl2en)
