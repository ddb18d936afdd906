"""Deterministic builder of the read8 pack's seed pools (`read8/pools/*.json`).

    python -m read_jax.capabilities.packs.build_pools            # rewrite the pool files
    python -m read_jax.capabilities.packs.build_pools --check    # exit 1 if they are stale

Why code and not hand-written JSON: most pools are *generated* items whose answers must be
right by construction (puzzles solved by brute force, programs whose printed output is
captured by running them, documents whose needles are placed and counted by the builder).
The hand-picked facts (countries, elements, translations, ...) live here too, as compact
tables, so every pool has one source.  Only facts we are certain of are listed; ambiguous
ones (countries with several capitals, transcontinental countries, words with two common
translations) are left out on purpose.

Randomness is a self-contained splitmix64 generator keyed by strings, so the output is
byte-for-byte the same on every Python and NumPy version.  Each file is
`{pool: {"doc": ..., "records": [...]}}` written with sorted keys.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import itertools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

POOL_DIR = Path(__file__).parent / "read8" / "pools"
_MASK = (1 << 64) - 1


class Rng:
    """splitmix64 keyed by a string: tiny, and stable across library versions."""

    def __init__(self, key: str):
        self.state = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")

    def next64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next64() % n

    def randint(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi]."""
        return lo + self.below(hi - lo + 1)

    def choice(self, seq: Sequence[Any]) -> Any:
        return seq[self.below(len(seq))]

    def coin(self) -> bool:
        return bool(self.below(2))

    def shuffle(self, items: list[Any]) -> list[Any]:
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]
        return items

    def sample(self, seq: Sequence[Any], k: int) -> list[Any]:
        return self.shuffle(list(seq))[:k]


def _pool(doc: str, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"doc": doc, "records": list(records)}


def _digits(n: int) -> int:
    return len(str(abs(n)))


def _words(text: str) -> int:
    return len(text.split())


# =========================================================================== knowledge
# (country, capital, continent, rarity 0 = widely known .. 2 = rarely asked)
COUNTRIES = [
    ("France", "Paris", "Europe", 0), ("Germany", "Berlin", "Europe", 0), ("Italy", "Rome", "Europe", 0),
    ("Spain", "Madrid", "Europe", 0), ("United Kingdom", "London", "Europe", 0), ("Greece", "Athens", "Europe", 0),
    ("Portugal", "Lisbon", "Europe", 1), ("Ireland", "Dublin", "Europe", 1), ("Norway", "Oslo", "Europe", 1),
    ("Sweden", "Stockholm", "Europe", 1), ("Finland", "Helsinki", "Europe", 1), ("Denmark", "Copenhagen", "Europe", 1),
    ("Poland", "Warsaw", "Europe", 1), ("Austria", "Vienna", "Europe", 1), ("Hungary", "Budapest", "Europe", 1),
    ("Belgium", "Brussels", "Europe", 1), ("Czech Republic", "Prague", "Europe", 1), ("Iceland", "Reykjavik", "Europe", 1),
    ("Romania", "Bucharest", "Europe", 2), ("Bulgaria", "Sofia", "Europe", 2), ("Serbia", "Belgrade", "Europe", 2),
    ("Croatia", "Zagreb", "Europe", 2), ("Slovakia", "Bratislava", "Europe", 2), ("Slovenia", "Ljubljana", "Europe", 2),
    ("Latvia", "Riga", "Europe", 2), ("Lithuania", "Vilnius", "Europe", 2), ("Estonia", "Tallinn", "Europe", 2),
    ("Albania", "Tirana", "Europe", 2),
    ("Japan", "Tokyo", "Asia", 0), ("China", "Beijing", "Asia", 0), ("India", "New Delhi", "Asia", 0),
    ("South Korea", "Seoul", "Asia", 1), ("Thailand", "Bangkok", "Asia", 1), ("Vietnam", "Hanoi", "Asia", 1),
    ("Philippines", "Manila", "Asia", 1), ("Saudi Arabia", "Riyadh", "Asia", 1), ("Iran", "Tehran", "Asia", 1),
    ("Iraq", "Baghdad", "Asia", 1), ("Pakistan", "Islamabad", "Asia", 2), ("Bangladesh", "Dhaka", "Asia", 2),
    ("Nepal", "Kathmandu", "Asia", 2), ("Mongolia", "Ulaanbaatar", "Asia", 2), ("Afghanistan", "Kabul", "Asia", 2),
    ("Syria", "Damascus", "Asia", 2), ("Jordan", "Amman", "Asia", 2), ("Lebanon", "Beirut", "Asia", 2),
    ("Qatar", "Doha", "Asia", 2), ("Oman", "Muscat", "Asia", 2), ("Cambodia", "Phnom Penh", "Asia", 2),
    ("Laos", "Vientiane", "Asia", 2), ("Bhutan", "Thimphu", "Asia", 2),
    ("Egypt", "Cairo", "Africa", 0), ("Kenya", "Nairobi", "Africa", 1), ("Nigeria", "Abuja", "Africa", 1),
    ("Ghana", "Accra", "Africa", 1), ("Ethiopia", "Addis Ababa", "Africa", 1), ("Morocco", "Rabat", "Africa", 1),
    ("Senegal", "Dakar", "Africa", 2), ("Uganda", "Kampala", "Africa", 2), ("Zimbabwe", "Harare", "Africa", 2),
    ("Zambia", "Lusaka", "Africa", 2), ("Angola", "Luanda", "Africa", 2), ("Mozambique", "Maputo", "Africa", 2),
    ("Madagascar", "Antananarivo", "Africa", 2), ("Tunisia", "Tunis", "Africa", 2), ("Algeria", "Algiers", "Africa", 2),
    ("Libya", "Tripoli", "Africa", 2),
    ("Canada", "Ottawa", "North America", 0), ("Mexico", "Mexico City", "North America", 0),
    ("Cuba", "Havana", "North America", 1), ("Jamaica", "Kingston", "North America", 2),
    ("Guatemala", "Guatemala City", "North America", 2), ("Honduras", "Tegucigalpa", "North America", 2),
    ("Nicaragua", "Managua", "North America", 2), ("Panama", "Panama City", "North America", 2),
    ("Dominican Republic", "Santo Domingo", "North America", 2), ("Haiti", "Port-au-Prince", "North America", 2),
    ("El Salvador", "San Salvador", "North America", 2),
    ("Brazil", "Brasília", "South America", 0), ("Argentina", "Buenos Aires", "South America", 0),
    ("Peru", "Lima", "South America", 1), ("Chile", "Santiago", "South America", 1),
    ("Venezuela", "Caracas", "South America", 1), ("Colombia", "Bogotá", "South America", 1),
    ("Uruguay", "Montevideo", "South America", 2), ("Ecuador", "Quito", "South America", 2),
    ("Paraguay", "Asunción", "South America", 2),
    ("Australia", "Canberra", "Oceania", 0), ("New Zealand", "Wellington", "Oceania", 1),
    ("Fiji", "Suva", "Oceania", 2), ("Papua New Guinea", "Port Moresby", "Oceania", 2),
]
CONTINENTS = ["Africa", "Asia", "Europe", "North America", "South America", "Oceania"]

# (atomic number, symbol, name, rarity)
ELEMENTS = [
    (1, "H", "Hydrogen", 0), (2, "He", "Helium", 0), (3, "Li", "Lithium", 1), (4, "Be", "Beryllium", 2),
    (5, "B", "Boron", 1), (6, "C", "Carbon", 0), (7, "N", "Nitrogen", 0), (8, "O", "Oxygen", 0),
    (9, "F", "Fluorine", 1), (10, "Ne", "Neon", 1), (11, "Na", "Sodium", 0), (12, "Mg", "Magnesium", 1),
    (13, "Al", "Aluminium", 1), (14, "Si", "Silicon", 1), (15, "P", "Phosphorus", 1), (16, "S", "Sulfur", 1),
    (17, "Cl", "Chlorine", 0), (18, "Ar", "Argon", 1), (19, "K", "Potassium", 0), (20, "Ca", "Calcium", 0),
    (21, "Sc", "Scandium", 2), (22, "Ti", "Titanium", 1), (23, "V", "Vanadium", 2), (24, "Cr", "Chromium", 2),
    (25, "Mn", "Manganese", 2), (26, "Fe", "Iron", 0), (27, "Co", "Cobalt", 2), (28, "Ni", "Nickel", 1),
    (29, "Cu", "Copper", 0), (30, "Zn", "Zinc", 1), (31, "Ga", "Gallium", 2), (32, "Ge", "Germanium", 2),
    (33, "As", "Arsenic", 2), (34, "Se", "Selenium", 2), (35, "Br", "Bromine", 2), (36, "Kr", "Krypton", 2),
    (37, "Rb", "Rubidium", 2), (38, "Sr", "Strontium", 2), (47, "Ag", "Silver", 0), (50, "Sn", "Tin", 1),
    (53, "I", "Iodine", 1), (54, "Xe", "Xenon", 2), (55, "Cs", "Caesium", 2), (56, "Ba", "Barium", 2),
    (74, "W", "Tungsten", 2), (78, "Pt", "Platinum", 1), (79, "Au", "Gold", 0), (80, "Hg", "Mercury", 1),
    (82, "Pb", "Lead", 1), (86, "Rn", "Radon", 2), (88, "Ra", "Radium", 2), (92, "U", "Uranium", 1),
    (94, "Pu", "Plutonium", 2),
]
PLANETS = ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"]
PLANET_RARITY = [1, 1, 0, 0, 0, 0, 2, 2]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]

# (title, author, rarity)
WORKS = [
    ("Hamlet", "William Shakespeare", 0), ("Romeo and Juliet", "William Shakespeare", 0),
    ("Macbeth", "William Shakespeare", 0), ("Pride and Prejudice", "Jane Austen", 0),
    ("Nineteen Eighty-Four", "George Orwell", 0), ("Animal Farm", "George Orwell", 0),
    ("Don Quixote", "Miguel de Cervantes", 0), ("War and Peace", "Leo Tolstoy", 0),
    ("Anna Karenina", "Leo Tolstoy", 1), ("Crime and Punishment", "Fyodor Dostoevsky", 1),
    ("Moby-Dick", "Herman Melville", 1), ("The Odyssey", "Homer", 0), ("The Iliad", "Homer", 0),
    ("The Divine Comedy", "Dante Alighieri", 1), ("Les Misérables", "Victor Hugo", 1),
    ("One Hundred Years of Solitude", "Gabriel García Márquez", 1), ("The Great Gatsby", "F. Scott Fitzgerald", 0),
    ("To Kill a Mockingbird", "Harper Lee", 0), ("Frankenstein", "Mary Shelley", 0),
    ("Jane Eyre", "Charlotte Brontë", 1), ("Wuthering Heights", "Emily Brontë", 1),
    ("The Adventures of Tom Sawyer", "Mark Twain", 1), ("Adventures of Huckleberry Finn", "Mark Twain", 1),
    ("Great Expectations", "Charles Dickens", 1), ("Oliver Twist", "Charles Dickens", 0),
    ("A Tale of Two Cities", "Charles Dickens", 1), ("Ulysses", "James Joyce", 2),
    ("The Metamorphosis", "Franz Kafka", 1), ("Madame Bovary", "Gustave Flaubert", 2),
    ("Brave New World", "Aldous Huxley", 1), ("The Old Man and the Sea", "Ernest Hemingway", 1),
    ("Dracula", "Bram Stoker", 1), ("The Hobbit", "J. R. R. Tolkien", 0), ("Mrs Dalloway", "Virginia Woolf", 2),
    ("The Catcher in the Rye", "J. D. Salinger", 1), ("Of Mice and Men", "John Steinbeck", 1),
    ("The Grapes of Wrath", "John Steinbeck", 2), ("Paradise Lost", "John Milton", 2),
    ("The Canterbury Tales", "Geoffrey Chaucer", 2), ("Alice's Adventures in Wonderland", "Lewis Carroll", 0),
    ("Twenty Thousand Leagues Under the Seas", "Jules Verne", 1), ("The Little Prince", "Antoine de Saint-Exupéry", 1),
    ("Robinson Crusoe", "Daniel Defoe", 1), ("Gulliver's Travels", "Jonathan Swift", 1),
    ("The Picture of Dorian Gray", "Oscar Wilde", 1), ("The Hound of the Baskervilles", "Arthur Conan Doyle", 1),
    ("The War of the Worlds", "H. G. Wells", 1), ("The Time Machine", "H. G. Wells", 1),
    ("Treasure Island", "Robert Louis Stevenson", 1),
]
# (topic, rarity) for open-ended explanations
GK_TOPICS = [
    ("photosynthesis", 0), ("the water cycle", 0), ("the greenhouse effect", 0), ("how rainbows form", 0),
    ("supply and demand", 0), ("the causes of the seasons on Earth", 0), ("how vaccines work", 0),
    ("ocean tides", 0), ("the periodic table", 0), ("evolution by natural selection", 0),
    ("plate tectonics", 1), ("the structure of DNA", 1), ("the French Revolution", 1), ("the printing press", 1),
    ("black holes", 1), ("the Industrial Revolution", 1), ("the immune system", 1), ("inflation in economics", 1),
    ("the Renaissance", 1), ("the Doppler effect", 1), ("the Cold War", 1), ("the Roman Republic", 1),
    ("the Silk Road", 2), ("the Krebs cycle", 2), ("the Peace of Westphalia", 2), ("the Meiji Restoration", 2),
    ("the Byzantine Empire", 2), ("superconductivity", 2), ("the Hanseatic League", 2), ("the Mayan calendar", 2),
]


def knowledge_pools() -> dict[str, Any]:
    return {
        "countries": _pool("Sovereign states with one undisputed capital, wholly on one continent.",
                           ({"name": n, "capital": c, "continent": k, "rarity": r} for n, c, k, r in COUNTRIES)),
        "continents": _pool("The six continents used by `countries`.", ({"name": c} for c in CONTINENTS)),
        "elements": _pool("Chemical elements: IUPAC name, symbol, atomic number.",
                          ({"number": z, "symbol": s, "name": n, "rarity": r} for z, s, n, r in ELEMENTS)),
        "planets": _pool("Planets of the Solar System, numbered outward from the Sun.",
                         ({"name": p, "order": i + 1, "ordinal": ORDINALS[i], "rarity": PLANET_RARITY[i]}
                          for i, p in enumerate(PLANETS))),
        "works": _pool("Famous literary works and their authors.",
                       ({"title": t, "author": a, "rarity": r} for t, a, r in WORKS)),
        "gk_topics": _pool("Topics for open-ended explanations.", ({"topic": t, "rarity": r} for t, r in GK_TOPICS)),
    }


# =========================================================================== quantities (math)
UNITS = [
    ("kilometres", "metres", 1000), ("metres", "centimetres", 100), ("metres", "millimetres", 1000),
    ("centimetres", "millimetres", 10), ("hours", "minutes", 60), ("minutes", "seconds", 60),
    ("hours", "seconds", 3600), ("days", "hours", 24), ("weeks", "days", 7), ("years", "months", 12),
    ("decades", "years", 10), ("centuries", "years", 100), ("kilograms", "grams", 1000),
    ("tonnes", "kilograms", 1000), ("litres", "millilitres", 1000), ("days", "minutes", 1440),
]
NAMES = [
    "Ana", "Ben", "Chloe", "Daniel", "Emma", "Farid", "Grace", "Hiro", "Isabel", "Jonas", "Kemi", "Liam", "Maya",
    "Noah", "Olga", "Priya", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe",
    "Amir", "Bianca", "Carlos", "Dana", "Elif", "Felix", "Gita", "Hugo", "Ines", "Jamal", "Kai", "Lena", "Mateo",
    "Nia",
]
ITEMS = [
    ("apple", "apples"), ("pencil", "pencils"), ("marble", "marbles"), ("book", "books"), ("sticker", "stickers"),
    ("cookie", "cookies"), ("orange", "oranges"), ("stamp", "stamps"), ("card", "cards"), ("shell", "shells"),
    ("coin", "coins"), ("egg", "eggs"), ("bottle", "bottles"), ("flower", "flowers"), ("candle", "candles"),
    ("notebook", "notebooks"), ("balloon", "balloons"), ("button", "buttons"), ("ticket", "tickets"),
    ("cupcake", "cupcakes"),
]
PERCENTS = [5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 80, 90]


def _number(rng: Rng, digits: int, lo: int = 2) -> int:
    return rng.randint(max(lo, 10 ** (digits - 1)), 10 ** digits - 1)


def math_pools() -> dict[str, Any]:
    rng = Rng("math")
    operands, divisions, percents = [], [], []
    for digits in (1, 2, 3, 4):
        for _ in range(60):
            a, b = sorted((_number(rng, digits), _number(rng, digits)), reverse=True)
            operands.append({"a": a, "b": b, "c": rng.randint(2, 12), "d": rng.randint(2, 9), "digits": digits})
            divisor = rng.randint(2, 12 if digits < 3 else 25)
            quotient = _number(rng, digits)
            divisions.append({"dividend": divisor * quotient, "divisor": divisor, "quotient": quotient,
                              "digits": _digits(divisor * quotient)})
            pct = rng.choice(PERCENTS)
            step = 100 // _gcd(pct, 100)  # the smallest base making pct% of it whole
            base = step * rng.randint(max(1, 10 ** (digits - 1) // step), max(1, (10 ** digits - 1) // step))
            percents.append({"pct": pct, "base": base, "part": pct * base // 100, "digits": _digits(base)})
    return {
        "operands": _pool("Integer operands a >= b >= 2 with `digits` digits, small factors c in 2..12 and d in 2..9.",
                          operands),
        "divisions": _pool("Exact divisions dividend = divisor * quotient.", divisions),
        "percents": _pool("Percentages whose value is a whole number: part = pct% of base.", percents),
        "units": _pool("Unit conversions: 1 `big` = `factor` `small` (plural names).",
                       ({"big": b, "small": s, "factor": f} for b, s, f in UNITS)),
        "names": _pool("First names for word problems.", ({"name": n} for n in NAMES)),
        "items": _pool("Countable objects for word problems.", ({"singular": s, "plural": p} for s, p in ITEMS)),
    }


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


# =========================================================================== reasoning
COMPARATIVES = [  # (comparative, opposite, most, least)
    ("taller", "shorter", "tallest", "shortest"), ("older", "younger", "oldest", "youngest"),
    ("faster", "slower", "fastest", "slowest"), ("heavier", "lighter", "heaviest", "lightest"),
    ("richer", "poorer", "richest", "poorest"),
]
NONSENSE = ["blickets", "daxes", "feps", "gorps", "jazzles", "kivas", "lumps", "mibbles", "norks", "plovs",
            "quibs", "ruxes", "snerps", "tovs", "vamps", "wugs", "yerbs", "zorbs"]


def _orderings(rng: Rng) -> list[dict[str, Any]]:
    out = []
    for i in range(240):
        n = 3 + i % 5
        comp, opp, most, least = rng.choice(COMPARATIVES)
        order = rng.sample(NAMES, n)  # order[0] is the most
        pairs = [(order[j], order[j + 1]) for j in range(n - 1)]
        extra = [(order[j], order[k]) for j in range(n) for k in range(j + 2, n)]
        pairs += rng.sample(extra, min(len(extra), rng.randint(0, 2)))
        rng.shuffle(pairs)
        facts, flipped = [], 0
        for hi, lo in pairs:
            if rng.below(3) == 0:
                facts.append(f"{lo} is {opp} than {hi}.")
                flipped += 1
            else:
                facts.append(f"{hi} is {comp} than {lo}.")
        x, y = rng.sample(order, 2)
        out.append({
            "facts": " ".join(facts), "n": n, "constraints": len(facts), "hops": n - 1, "symbols": flipped,
            "comparative": comp, "opposite": opp, "most": most, "least": least,
            "first": order[0], "second": order[1], "last": order[-1], "order_json": json.dumps(order),
            "q_x": x, "q_y": y, "q_answer": "yes" if order.index(x) < order.index(y) else "no",
            "q_hops": abs(order.index(x) - order.index(y)),
        })
    return out


def _chains(rng: Rng) -> list[dict[str, Any]]:
    out = []
    for i in range(200):
        length = 4 + i % 5
        people = rng.sample(NAMES, length + 4)
        chain, others = people[:length], people[length:]
        facts = [f"{chain[j]} reports to {chain[j + 1]}." for j in range(length - 1)]
        n_distract = rng.randint(0, len(others))
        for p in others[:n_distract]:
            facts.append(f"{p} reports to {rng.choice(chain[1:])}.")
        rng.shuffle(facts)
        hops = rng.randint(1, min(4, length - 1))
        start = chain[0]
        question = "the manager of " * hops + start
        out.append({"facts": " ".join(facts), "start": start, "question": question, "answer": chain[hops],
                    "hops": hops, "constraints": len(facts), "distractors": n_distract, "top": chain[-1]})
    return out


def _bool_tree(rng: Rng, depth: int, leaves: Sequence[str]) -> tuple:
    """A random and/or/not expression as nested tuples: ("leaf", v), ("not", v) or (op, left, right)."""
    if depth == 0:
        v = rng.choice(leaves)
        return ("not", v) if rng.below(4) == 0 else ("leaf", v)
    left = _bool_tree(rng, max(0, depth - 1 - rng.below(2)), leaves)
    return (rng.choice(["and", "or"]), left, _bool_tree(rng, depth - 1, leaves))


def _render_bool(node: tuple, leaf: Callable[[str], str]) -> str:
    if node[0] == "leaf":
        return leaf(node[1])
    if node[0] == "not":
        return f"not {leaf(node[1])}"
    parts = [f"({_render_bool(c, leaf)})" if c[0] in ("and", "or") else _render_bool(c, leaf) for c in node[1:]]
    return f" {node[0]} ".join(parts)


def _bool_value(node: tuple, env: dict[str, bool]) -> bool:
    if node[0] == "leaf":
        return env[node[1]]
    if node[0] == "not":
        return not env[node[1]]
    left, right = _bool_value(node[1], env), _bool_value(node[2], env)
    return (left and right) if node[0] == "and" else (left or right)


def _bool_leaves(node: tuple) -> list[str]:
    return [node[1]] if node[0] in ("leaf", "not") else _bool_leaves(node[1]) + _bool_leaves(node[2])


def _booleans(rng: Rng) -> list[dict[str, Any]]:
    out = []
    names = ["p", "q", "r", "s"]
    for i in range(240):
        depth = 1 + i % 4
        env = {v: rng.coin() for v in names}
        tree = _bool_tree(rng, depth, names)
        text = _render_bool(tree, lambda v: v)
        used = sorted(set(_bool_leaves(tree)))
        value = _bool_value(tree, env)
        out.append({"expr": _render_bool(tree, lambda v: str(env[v])), "var_expr": text,
                    "bindings": ", ".join(f"{v} = {env[v]}" for v in used),
                    "value": "true" if value else "false", "yes_no": "yes" if value else "no",
                    "symbols": text.count(" and ") + text.count(" or ") + text.count("not "),
                    "hops": depth, "constraints": len(used)})
    return out


def _programs(rng: Rng) -> list[dict[str, Any]]:
    out = []
    var_names = "abcdefgh"
    for i in range(200):
        steps = 2 + i % 5
        lines, env, ops = [], {}, 0
        first = rng.randint(1, 9)
        lines.append(f"a = {first}")
        env["a"] = first
        for k in range(1, steps):
            v = var_names[k]
            prev = var_names[k - 1]
            other = var_names[rng.below(k)]
            form = rng.below(4)
            c = rng.randint(2, 5)
            if form == 0:
                expr = f"{prev} + {c}"
            elif form == 1:
                expr = f"{prev} * {c} - {other}"
            elif form == 2:
                expr = f"{prev} + {other}"
            else:
                expr = f"{prev} - {c}"
            ops += expr.count(" ") // 2
            env[v] = eval(expr, {}, dict(env))  # builder-side evaluation of our own tiny expression
            lines.append(f"{v} = {expr}")
        target = var_names[steps - 1]
        out.append({"program": "; ".join(lines), "target": target, "value": env[target], "steps": steps,
                    "symbols": ops, "constraints": steps})
    return out


def _knight_statement(rng: Rng, speaker: str, people: Sequence[str]) -> tuple[str, Callable[[dict[str, bool]], bool], int]:
    others = [p for p in people if p != speaker]
    form = rng.below(5)
    x = rng.choice(others)
    if form == 0:
        return f"{x} is a knave.", lambda k: not k[x], 0
    if form == 1:
        return f"{x} is a knight.", lambda k: k[x], 0
    if form == 2 and len(others) >= 2:
        x, y = rng.sample(others, 2)
        return f"{x} and {y} are both knights.", lambda k: k[x] and k[y], 1
    if form == 3 and len(others) >= 2:
        x, y = rng.sample(others, 2)
        return f"At least one of {x} and {y} is a knave.", lambda k: not (k[x] and k[y]), 1
    if rng.coin():
        return f"{x} and I are the same kind.", lambda k: k[x] == k[speaker], 1
    return f"{x} and I are different kinds.", lambda k: k[x] != k[speaker], 1


def _knights(rng: Rng) -> list[dict[str, Any]]:
    out = []
    while len(out) < 200:
        n = 2 + len(out) % 3
        people = rng.sample(NAMES, n)
        said = [(p, *_knight_statement(rng, p, people)) for p in people]
        sols = []
        for bits in itertools.product([True, False], repeat=n):
            k = dict(zip(people, bits))
            if all(k[p] == f(k) for p, _, f, _ in said):
                sols.append(k)
        if len(sols) != 1:
            continue
        ask = rng.choice(people)
        out.append({"statements": " ".join(f'{p} says: "{s}"' for p, s, _, _ in said), "people": ", ".join(people),
                    "ask": ask, "answer": "knight" if sols[0][ask] else "knave", "n": n, "constraints": n,
                    "symbols": sum(c for _, _, _, c in said), "hops": n - 1})
    return out


def _syllogisms(rng: Rng) -> list[dict[str, Any]]:
    out = []
    for i in range(200):
        k = 2 + i % 4
        terms = rng.sample(NONSENSE, k + 1 + 3)
        chain, rest = terms[: k + 1], terms[k + 1:]
        premises = [f"All {chain[j]} are {chain[j + 1]}." for j in range(k)]
        for t in rest[: rng.randint(0, 3)]:
            premises.append(f"All {t} are {rng.choice(chain)}.")
        rng.shuffle(premises)
        if i % 2 == 0:
            x, y, ans, hops = chain[0], chain[k], "yes", k
        else:  # the converse of the chain never follows
            x, y, ans, hops = chain[k], chain[0], "no", k
        out.append({"premises": " ".join(premises), "x": x, "y": y, "answer": ans, "hops": hops,
                    "constraints": len(premises)})
    return out


def _sequences(rng: Rng) -> list[dict[str, Any]]:
    out = []
    kinds = ["arithmetic", "geometric", "second_difference", "alternating", "fibonacci"]
    for i in range(200):
        kind = kinds[i % len(kinds)]
        n = 5 + rng.below(2)
        if kind == "arithmetic":
            start, d = rng.randint(1, 50), rng.randint(2, 15)
            seq = [start + d * j for j in range(n + 1)]
        elif kind == "geometric":
            start, r = rng.randint(1, 5), rng.randint(2, 3)
            seq = [start * r ** j for j in range(n + 1)]
        elif kind == "second_difference":
            start, d, dd = rng.randint(1, 20), rng.randint(1, 5), rng.randint(1, 4)
            seq = [start]
            for j in range(n):
                seq.append(seq[-1] + d + dd * j)
        elif kind == "alternating":
            start, p, q = rng.randint(1, 30), rng.randint(2, 9), -rng.randint(1, 5)
            seq = [start]
            for j in range(n):
                seq.append(seq[-1] + (p if j % 2 == 0 else q))
        else:
            seq = [rng.randint(1, 5), rng.randint(1, 6)]
            while len(seq) < n + 1:
                seq.append(seq[-1] + seq[-2])
        out.append({"terms": ", ".join(map(str, seq[:n])), "next": seq[n], "kind": kind, "n": n,
                    "symbols": 1 if kind in ("arithmetic", "geometric") else 2,
                    "constraints": n, "hops": 1 if kind in ("arithmetic", "geometric") else 2})
    return out


def reasoning_pools() -> dict[str, Any]:
    return {
        "orderings": _pool("Total orders of people fixed by comparison facts (some phrased with the opposite word).",
                           _orderings(Rng("orderings"))),
        "chains": _pool("Reporting chains with distractor employees; `question` follows `hops` managers up.",
                        _chains(Rng("chains"))),
        "booleans": _pool("Boolean expressions, as literals (`expr`) and over bound variables (`var_expr`).",
                          _booleans(Rng("booleans"))),
        "programs": _pool("Straight-line integer assignments; `value` is the final variable.", _programs(Rng("programs"))),
        "knights": _pool("Knights (always truthful) and knaves (always lying) puzzles with a unique solution.",
                         _knights(Rng("knights"))),
        "syllogisms": _pool("Chains of 'All X are Y' premises; does 'all x are y' follow?", _syllogisms(Rng("syllogisms"))),
        "sequences": _pool("Integer sequences with one simple rule; `next` continues it.", _sequences(Rng("sequences"))),
    }


# =========================================================================== code
# (name, signature, description, solution body lines, asserts on `candidate`)
FUNCTIONS: list[tuple[str, str, str, str, list[str]]] = [
    ("sum_of_squares", "nums: list[int]) -> int", "Return the sum of the squares of the integers in nums.",
     "return sum(n * n for n in nums)",
     ["candidate([1, 2, 3]) == 14", "candidate([]) == 0", "candidate([-4]) == 16", "candidate([0, 5, -1]) == 26"]),
    ("count_vowels", "s: str) -> int", "Return how many characters of s are vowels (a, e, i, o, u), ignoring case.",
     "return sum(1 for ch in s.lower() if ch in 'aeiou')",
     ["candidate('hello') == 2", "candidate('') == 0", "candidate('AEIOU xyz') == 5", "candidate('rhythm') == 0"]),
    ("reverse_words", "s: str) -> str",
     "Return the words of s (separated by whitespace) in reverse order, joined by single spaces.",
     "return ' '.join(reversed(s.split()))",
     ["candidate('one two three') == 'three two one'", "candidate('  hi   there ') == 'there hi'",
      "candidate('') == ''", "candidate('solo') == 'solo'"]),
    ("is_palindrome", "s: str) -> bool",
     "Return True if s reads the same forwards and backwards when only letters and digits are kept and case is ignored.",
     "kept = [ch.lower() for ch in s if ch.isalnum()]\n    return kept == kept[::-1]",
     ["candidate('A man, a plan, a canal: Panama') is True", "candidate('abc') is False", "candidate('') is True",
      "candidate('No lemon, no melon') is True", "candidate('ab2a') is False"]),
    ("running_max", "nums: list[int]) -> list[int]",
     "Return a list whose i-th element is the largest value among nums[0], ..., nums[i].",
     "out = []\n    for n in nums:\n        out.append(n if not out else max(out[-1], n))\n    return out",
     ["candidate([1, 3, 2, 5, 4]) == [1, 3, 3, 5, 5]", "candidate([]) == []", "candidate([-2, -5]) == [-2, -2]"]),
    ("flatten", "nested: list[list[int]]) -> list[int]",
     "Return the elements of the inner lists of nested, in order, as one flat list.",
     "return [x for inner in nested for x in inner]",
     ["candidate([[1, 2], [3], []]) == [1, 2, 3]", "candidate([]) == []", "candidate([[5], [4, 4]]) == [5, 4, 4]"]),
    ("fizzbuzz", "n: int) -> list[str]",
     "Return the strings for 1..n: 'FizzBuzz' for multiples of 15, 'Fizz' for other multiples of 3, "
     "'Buzz' for other multiples of 5, and the number itself otherwise.",
     "out = []\n    for i in range(1, n + 1):\n        if i % 15 == 0:\n            out.append('FizzBuzz')\n"
     "        elif i % 3 == 0:\n            out.append('Fizz')\n        elif i % 5 == 0:\n            out.append('Buzz')\n"
     "        else:\n            out.append(str(i))\n    return out",
     ["candidate(5) == ['1', '2', 'Fizz', '4', 'Buzz']", "candidate(0) == []", "candidate(15)[-1] == 'FizzBuzz'",
      "len(candidate(30)) == 30"]),
    ("gcd", "a: int, b: int) -> int",
     "Return the greatest common divisor of two non-negative integers a and b (gcd(0, 0) is 0).",
     "while b:\n        a, b = b, a % b\n    return a",
     ["candidate(12, 18) == 6", "candidate(7, 13) == 1", "candidate(0, 5) == 5", "candidate(0, 0) == 0",
      "candidate(100, 75) == 25"]),
    ("is_prime", "n: int) -> bool", "Return True if the integer n is a prime number.",
     "if n < 2:\n        return False\n    i = 2\n    while i * i <= n:\n        if n % i == 0:\n            return False\n"
     "        i += 1\n    return True",
     ["candidate(2) is True", "candidate(1) is False", "candidate(97) is True", "candidate(91) is False",
      "candidate(-7) is False", "candidate(25) is False"]),
    ("factorial", "n: int) -> int", "Return n! for a non-negative integer n (0! is 1).",
     "result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result",
     ["candidate(0) == 1", "candidate(1) == 1", "candidate(5) == 120", "candidate(10) == 3628800"]),
    ("fibonacci", "n: int) -> int", "Return the n-th Fibonacci number, where fibonacci(0) is 0 and fibonacci(1) is 1.",
     "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
     ["candidate(0) == 0", "candidate(1) == 1", "candidate(2) == 1", "candidate(10) == 55", "candidate(20) == 6765"]),
    ("char_frequency", "s: str) -> dict[str, int]", "Return a dictionary mapping each character of s to how often it occurs.",
     "out = {}\n    for ch in s:\n        out[ch] = out.get(ch, 0) + 1\n    return out",
     ["candidate('aab') == {'a': 2, 'b': 1}", "candidate('') == {}", "candidate('xyzx') == {'x': 2, 'y': 1, 'z': 1}"]),
    ("second_largest", "nums: list[int]) -> int | None",
     "Return the second largest distinct value in nums, or None if there are fewer than two distinct values.",
     "values = sorted(set(nums))\n    return values[-2] if len(values) >= 2 else None",
     ["candidate([4, 1, 3, 4]) == 3", "candidate([7]) is None", "candidate([2, 2]) is None", "candidate([-1, -3]) == -3"]),
    ("merge_sorted", "a: list[int], b: list[int]) -> list[int]",
     "Merge two lists that are each sorted in ascending order into one sorted list.",
     "i = j = 0\n    out = []\n    while i < len(a) and j < len(b):\n        if a[i] <= b[j]:\n            out.append(a[i])\n"
     "            i += 1\n        else:\n            out.append(b[j])\n            j += 1\n    return out + a[i:] + b[j:]",
     ["candidate([1, 4, 9], [2, 3, 10]) == [1, 2, 3, 4, 9, 10]", "candidate([], [1]) == [1]",
      "candidate([1, 1], [1]) == [1, 1, 1]", "candidate([], []) == []"]),
    ("remove_duplicates", "items: list[int]) -> list[int]",
     "Return items without repeated values, keeping the first occurrence of each value in its original order.",
     "seen = set()\n    out = []\n    for x in items:\n        if x not in seen:\n            seen.add(x)\n"
     "            out.append(x)\n    return out",
     ["candidate([3, 1, 3, 2, 1]) == [3, 1, 2]", "candidate([]) == []", "candidate([5, 5, 5]) == [5]"]),
    ("capitalize_words", "s: str) -> str",
     "Return s with every space-separated word written with its first letter upper case and the rest lower case.",
     "return ' '.join(w[:1].upper() + w[1:].lower() for w in s.split(' '))",
     ["candidate('hello wORLD') == 'Hello World'", "candidate('a') == 'A'", "candidate('') == ''",
      "candidate('python is FUN') == 'Python Is Fun'"]),
    ("digit_sum", "n: int) -> int", "Return the sum of the decimal digits of the integer n, ignoring its sign.",
     "return sum(int(ch) for ch in str(abs(n)))",
     ["candidate(1234) == 10", "candidate(0) == 0", "candidate(-907) == 16", "candidate(99999) == 45"]),
    ("chunk", "items: list[int], size: int) -> list[list[int]]",
     "Split items into consecutive chunks of length size (the last chunk may be shorter).",
     "return [items[i:i + size] for i in range(0, len(items), size)]",
     ["candidate([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]", "candidate([], 3) == []",
      "candidate([1, 2, 3], 3) == [[1, 2, 3]]"]),
    ("rotate_left", "items: list[int], k: int) -> list[int]",
     "Return items rotated left by k positions (k may be larger than the length; an empty list stays empty).",
     "if not items:\n        return []\n    k %= len(items)\n    return items[k:] + items[:k]",
     ["candidate([1, 2, 3, 4], 1) == [2, 3, 4, 1]", "candidate([1, 2, 3], 5) == [3, 1, 2]", "candidate([], 2) == []",
      "candidate([7, 8], 0) == [7, 8]"]),
    ("word_count", "s: str) -> dict[str, int]",
     "Return a dictionary mapping each lower-cased whitespace-separated word of s to its number of occurrences.",
     "out = {}\n    for w in s.lower().split():\n        out[w] = out.get(w, 0) + 1\n    return out",
     ["candidate('The cat the hat') == {'the': 2, 'cat': 1, 'hat': 1}", "candidate('') == {}",
      "candidate('a A a') == {'a': 3}"]),
    ("binary_search", "nums: list[int], target: int) -> int",
     "Return the index of target in the ascending list nums of distinct integers, or -1 if it is absent.",
     "lo, hi = 0, len(nums) - 1\n    while lo <= hi:\n        mid = (lo + hi) // 2\n        if nums[mid] == target:\n"
     "            return mid\n        if nums[mid] < target:\n            lo = mid + 1\n        else:\n            hi = mid - 1\n"
     "    return -1",
     ["candidate([1, 3, 5, 7, 9], 7) == 3", "candidate([1, 3, 5], 4) == -1", "candidate([], 1) == -1",
      "candidate([2], 2) == 0", "candidate([1, 3, 5, 7, 9], 1) == 0"]),
    ("celsius_to_fahrenheit", "c: float) -> float", "Convert a temperature from degrees Celsius to degrees Fahrenheit.",
     "return c * 9 / 5 + 32",
     ["candidate(0) == 32", "candidate(100) == 212", "candidate(-40) == -40", "abs(candidate(37) - 98.6) < 1e-9"]),
    ("longest_common_prefix", "words: list[str]) -> str",
     "Return the longest string that is a prefix of every word in words ('' for an empty list).",
     "if not words:\n        return ''\n    prefix = words[0]\n    for w in words[1:]:\n"
     "        while not w.startswith(prefix):\n            prefix = prefix[:-1]\n    return prefix",
     ["candidate(['flower', 'flow', 'flight']) == 'fl'", "candidate(['dog', 'car']) == ''", "candidate([]) == ''",
      "candidate(['same', 'same']) == 'same'"]),
    ("is_anagram", "a: str, b: str) -> bool",
     "Return True if a and b contain the same letters the same number of times, ignoring case and spaces.",
     "return sorted(a.replace(' ', '').lower()) == sorted(b.replace(' ', '').lower())",
     ["candidate('Listen', 'Silent') is True", "candidate('abc', 'abd') is False",
      "candidate('dormitory', 'dirty room') is True", "candidate('aa', 'a') is False"]),
    ("transpose", "matrix: list[list[int]]) -> list[list[int]]",
     "Return the transpose of a rectangular matrix given as a list of rows (an empty matrix gives []).",
     "return [list(col) for col in zip(*matrix)]",
     ["candidate([[1, 2, 3], [4, 5, 6]]) == [[1, 4], [2, 5], [3, 6]]", "candidate([]) == []",
      "candidate([[7]]) == [[7]]"]),
    ("count_pairs_with_sum", "nums: list[int], target: int) -> int",
     "Return how many index pairs i < j satisfy nums[i] + nums[j] == target.",
     "count = 0\n    for i in range(len(nums)):\n        for j in range(i + 1, len(nums)):\n"
     "            if nums[i] + nums[j] == target:\n                count += 1\n    return count",
     ["candidate([1, 2, 3, 4], 5) == 2", "candidate([1, 1, 1], 2) == 3", "candidate([], 0) == 0",
      "candidate([5], 10) == 0"]),
    ("caesar_shift", "s: str, k: int) -> str",
     "Shift every lower-case letter of s forward by k places in the alphabet (wrapping around); leave other characters unchanged.",
     "out = []\n    for ch in s:\n        if 'a' <= ch <= 'z':\n            out.append(chr((ord(ch) - 97 + k) % 26 + 97))\n"
     "        else:\n            out.append(ch)\n    return ''.join(out)",
     ["candidate('abc', 1) == 'bcd'", "candidate('xyz', 3) == 'abc'", "candidate('Hi there!', 2) == 'Hk vjgtg!'",
      "candidate('abc', 26) == 'abc'"]),
    ("to_binary", "n: int) -> str", "Return the binary representation of a non-negative integer n without any prefix.",
     "if n == 0:\n        return '0'\n    bits = ''\n    while n:\n        bits = str(n % 2) + bits\n        n //= 2\n    return bits",
     ["candidate(0) == '0'", "candidate(5) == '101'", "candidate(8) == '1000'", "candidate(255) == '11111111'"]),
    ("mean", "nums: list[float]) -> float", "Return the arithmetic mean of nums, or 0.0 for an empty list.",
     "return sum(nums) / len(nums) if nums else 0.0",
     ["candidate([1, 2, 3, 4]) == 2.5", "candidate([]) == 0.0", "candidate([-3, 3]) == 0", "candidate([7]) == 7"]),
    ("run_length_encode", "s: str) -> str",
     "Encode s by replacing each run of a repeated character with the character followed by the run length, "
     "e.g. 'aaab' becomes 'a3b1'.",
     "out = ''\n    i = 0\n    while i < len(s):\n        j = i\n        while j < len(s) and s[j] == s[i]:\n            j += 1\n"
     "        out += s[i] + str(j - i)\n        i = j\n    return out",
     ["candidate('aaab') == 'a3b1'", "candidate('') == ''", "candidate('abc') == 'a1b1c1'",
      "candidate('zzzzzzzzzzzz') == 'z12'"]),
    ("balanced_brackets", "s: str) -> bool",
     "Return True if the brackets (), [] and {} in s are balanced and properly nested; other characters are ignored.",
     "pairs = {')': '(', ']': '[', '}': '{'}\n    stack = []\n    for ch in s:\n        if ch in '([{':\n"
     "            stack.append(ch)\n        elif ch in pairs:\n            if not stack or stack.pop() != pairs[ch]:\n"
     "                return False\n    return not stack",
     ["candidate('([]{})') is True", "candidate('(]') is False", "candidate('') is True", "candidate('((') is False",
      "candidate('a(b)c]') is False"]),
    ("product_except_self", "nums: list[int]) -> list[int]",
     "Return a list whose i-th element is the product of all elements of nums except nums[i].",
     "out = []\n    for i in range(len(nums)):\n        p = 1\n        for j, x in enumerate(nums):\n            if j != i:\n"
     "                p *= x\n        out.append(p)\n    return out",
     ["candidate([1, 2, 3, 4]) == [24, 12, 8, 6]", "candidate([5]) == [1]", "candidate([0, 2, 3]) == [6, 0, 0]",
      "candidate([]) == []"]),
    ("roman_to_int", "s: str) -> int", "Convert a Roman numeral written with I, V, X, L, C, D and M to an integer.",
     "values = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500, 'M': 1000}\n    total = 0\n"
     "    for i, ch in enumerate(s):\n        v = values[ch]\n        if i + 1 < len(s) and values[s[i + 1]] > v:\n"
     "            total -= v\n        else:\n            total += v\n    return total",
     ["candidate('III') == 3", "candidate('IV') == 4", "candidate('MCMXCIV') == 1994", "candidate('LVIII') == 58"]),
    ("count_primes", "n: int) -> int", "Return how many prime numbers are strictly less than n.",
     "count = 0\n    for k in range(2, n):\n        if all(k % d for d in range(2, int(k ** 0.5) + 1)):\n"
     "            count += 1\n    return count",
     ["candidate(10) == 4", "candidate(2) == 0", "candidate(0) == 0", "candidate(30) == 10"]),
    ("median", "nums: list[int]) -> float",
     "Return the median of a non-empty list of numbers (the mean of the two middle values for an even length).",
     "s = sorted(nums)\n    m = len(s) // 2\n    return s[m] if len(s) % 2 else (s[m - 1] + s[m]) / 2",
     ["candidate([3, 1, 2]) == 2", "candidate([4, 1, 3, 2]) == 2.5", "candidate([7]) == 7", "candidate([1, 1, 5, 9]) == 3"]),
    ("clamp", "x: int, lo: int, hi: int) -> int", "Return x limited to the closed range [lo, hi] (lo <= hi).",
     "return max(lo, min(x, hi))",
     ["candidate(5, 0, 10) == 5", "candidate(-3, 0, 10) == 0", "candidate(12, 0, 10) == 10", "candidate(4, 4, 4) == 4"]),
    ("vowel_positions", "s: str) -> list[int]", "Return the indices of the lower-case vowels (a, e, i, o, u) in s.",
     "return [i for i, ch in enumerate(s) if ch in 'aeiou']",
     ["candidate('banana') == [1, 3, 5]", "candidate('') == []", "candidate('xyz') == []", "candidate('Aeb') == [1]"]),
    ("max_subarray_sum", "nums: list[int]) -> int",
     "Return the largest sum of a non-empty contiguous sub-list of the non-empty list nums.",
     "best = cur = nums[0]\n    for x in nums[1:]:\n        cur = max(x, cur + x)\n        best = max(best, cur)\n    return best",
     ["candidate([-2, 1, -3, 4, -1, 2, 1, -5, 4]) == 6", "candidate([-3, -1]) == -1", "candidate([5]) == 5",
      "candidate([1, 2, 3]) == 6"]),
]

# textual mutations tried in order to make a buggy variant that some assert catches
MUTATIONS = [("<=", "<"), (" < ", " <= "), (">=", ">"), (" + 1", ""), (" - 1", ""), ("== 0", "!= 0"),
             ("True", "False"), (" and ", " or "), ("max(", "min("), ("[::-1]", ""), ("reversed(", "list("),
             ("% 2", "% 3"), (" * ", " + "), ("[1:]", "[2:]"), ("'aeiou'", "'aeio'"), ("+= 1", "+= 2"),
             ("return a", "return b"), ("append(", "insert(0, "), ("sum(", "max("), ("+ 32", "- 32"),
             ("for inner in nested for x in inner", "for inner in nested[1:] for x in inner"),
             ("zip(*matrix)", "zip(matrix)"), ("'z'", "'y'")]


def _function_source(name: str, sig: str, body: str) -> str:
    return f"def {name}({sig}:\n    {body}\n"


def _test_source(asserts: Sequence[str], extra: Sequence[tuple[str, Sequence[str]]] = ()) -> str:
    """HumanEval-style test: `check(candidate)`; `extra` asserts call further functions by name."""
    lines = ["def check(candidate):"] + [f"    assert {a}" for a in asserts]
    for fname, more in extra:
        lines += [f"    assert {a.replace('candidate(', fname + '(')}" for a in more]
    return "\n".join(lines) + "\n"


def _passes(solution: str, test: str, entry: str) -> bool:
    env: dict[str, Any] = {}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(solution + "\n" + test + f"\ncheck({entry})\n", env)  # the builder runs its own code only
    except Exception:  # noqa: BLE001 - any failure means "does not pass"
        return False
    return True


def _code_prompt(name: str, sig: str, desc: str) -> str:
    return f'def {name}({sig}:\n    """{desc}"""\n'


def code_pools() -> dict[str, Any]:
    functions, by_name = [], {}
    for name, sig, desc, body, asserts in FUNCTIONS:
        solution = _function_source(name, sig, body)
        test = _test_source(asserts)
        if not _passes(solution, test, name):
            raise AssertionError(f"canonical solution of {name} fails its tests")
        rec = {"name": name, "signature": f"def {name}({sig}", "description": desc, "solution": solution,
               "asserts": [a.replace("candidate(", name + "(") for a in asserts],
               "asserts_text": "\n".join(f"assert {a.replace('candidate(', name + '(')}" for a in asserts),
               "examples": "\n".join(a.replace("candidate(", name + "(") for a in asserts[:2]),
               "test": test, "entry_point": name, "code_prompt": _code_prompt(name, sig, desc),
               "n_tests": len(asserts), "spec_words": _words(desc), "functions": 1}
        functions.append(rec)
        by_name[name] = (sig, desc, body, asserts)
    rng = Rng("function_pairs")
    pairs = []
    names = [f[0] for f in FUNCTIONS]
    seen = set()
    while len(pairs) < 40:
        a, b = rng.sample(names, 2)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        (sa, da, ba, aa), (sb, db, bb, ab) = by_name[a], by_name[b]
        solution = _function_source(a, sa, ba) + "\n\n" + _function_source(b, sb, bb)
        test = _test_source(ab, [(a, aa)])
        if not _passes(solution, test, b):
            raise AssertionError(f"pair {a}+{b} fails its tests")
        spec = f"1. `def {a}({sa}`: {da}\n2. `def {b}({sb}`: {db}"
        pairs.append({"names": f"{a} and {b}", "spec": spec, "entry_point": b, "test": test, "solution": solution,
                      "code_prompt": _code_prompt(a, sa, da) + "\n\n" + _code_prompt(b, sb, db),
                      "n_tests": len(aa) + len(ab), "spec_words": _words(da) + _words(db), "functions": 2})
    buggy = []
    for name, sig, desc, body, asserts in FUNCTIONS:
        solution, test = _function_source(name, sig, body), _test_source(asserts)
        for old, new in MUTATIONS:
            if old not in body:
                continue
            wrong = _function_source(name, sig, body.replace(old, new, 1))
            try:
                compile(wrong, name, "exec")
            except SyntaxError:
                continue
            if not _passes(wrong, test, name):
                buggy.append({"name": name, "description": desc, "buggy": wrong, "solution": solution, "test": test,
                              "entry_point": name, "code_prompt": _code_prompt(name, sig, desc),
                              "n_tests": len(asserts), "spec_words": _words(desc), "functions": 1,
                              "failing": next(a.replace("candidate(", name + "(") for a in asserts
                                              if not _passes(wrong, _test_source([a]), name))})
                break
    return {
        "functions": _pool("Small Python functions: spec, HumanEval-style test `check(candidate)`, canonical solution.",
                           functions),
        "function_pairs": _pool("Two functions to write together; the test checks the second as `candidate` and "
                                "the first by name.", pairs),
        "buggy_functions": _pool("A one-token mutation of a canonical solution that fails `failing` (an assert).",
                                 buggy),
        "snippets": _pool("Short programs and what they print (captured by running them).", _snippets(Rng("snippets"))),
    }


SNIPPET_WORDS = ["banana", "kitten", "mississippi", "parallel", "rhythm", "balloon", "committee", "abracadabra"]


def _snippets(rng: Rng) -> list[dict[str, Any]]:
    out = []
    for i in range(160):
        form = i % 8
        nums = [rng.randint(-9, 20) for _ in range(rng.randint(3, 7))]
        word = rng.choice(SNIPPET_WORDS)
        k = rng.randint(2, 5)
        if form == 0:
            code = f"nums = {nums}\ntotal = 0\nfor n in nums:\n    if n % 2 == 0:\n        total += n\nprint(total)"
        elif form == 1:
            code = f"s = '{word}'\nprint(s[::-1].upper())"
        elif form == 2:
            code = f"x = {rng.randint(1, 9)}\nfor i in range({k}):\n    x = x * 2 - {rng.randint(1, 5)}\nprint(x)"
        elif form == 3:
            code = f"items = {nums}\nprint(sorted(items)[{rng.randint(0, len(nums) - 1)}])"
        elif form == 4:
            code = (f"counts = {{}}\nfor ch in '{word}':\n    counts[ch] = counts.get(ch, 0) + 1\n"
                    f"print(counts['{rng.choice(word)}'])")
        elif form == 5:
            code = f"a = {nums}\nb = [v * {k} for v in a if v > {rng.randint(0, 10)}]\nprint(b)"
        elif form == 6:
            code = (f"def f(n):\n    return n if n < 2 else f(n - 1) + f(n - 2)\n\nprint(f({rng.randint(3, 12)}))")
        else:
            code = (f"def g(xs):\n    out = []\n    for x in xs:\n        if x not in out:\n            out.append(x)\n"
                    f"    return out\n\nprint(len(g({nums + nums[:k]})), g({nums})[-1])")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(code, {})  # the builder runs its own generated code only
        out.append({"code": code, "output": buf.getvalue().strip(), "lines": code.count("\n") + 1,
                    "functions": code.count("def "), "spec_words": _words(code)})
    return out


# =========================================================================== tools
def _obj(props: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required)}


def _s(desc: str, **kw: Any) -> dict[str, Any]:
    return {"type": "string", "description": desc, **kw}


def _i(desc: str) -> dict[str, Any]:
    return {"type": "integer", "description": desc}


def _n(desc: str) -> dict[str, Any]:
    return {"type": "number", "description": desc}


TOOLS: list[dict[str, Any]] = [
    {"name": "get_weather", "description": "Get the current weather for a city.",
     "parameters": _obj({"city": _s("City name"), "unit": _s("Temperature unit", enum=["celsius", "fahrenheit"])},
                        ["city"])},
    {"name": "convert_currency", "description": "Convert an amount of money from one currency to another.",
     "parameters": _obj({"amount": _n("Amount to convert"), "from_currency": _s("ISO 4217 code, e.g. USD"),
                         "to_currency": _s("ISO 4217 code, e.g. EUR")}, ["amount", "from_currency", "to_currency"])},
    {"name": "send_email", "description": "Send an email.",
     "parameters": _obj({"to": _s("Recipient email address"), "subject": _s("Subject line"), "body": _s("Message text")},
                        ["to", "subject", "body"])},
    {"name": "create_calendar_event", "description": "Add an event to the user's calendar.",
     "parameters": _obj({"title": _s("Event title"), "date": _s("Date as YYYY-MM-DD"),
                         "start_time": _s("Start time as HH:MM (24-hour)"),
                         "duration_minutes": _i("Length of the event in minutes"),
                         "attendees": {"type": "array", "items": {"type": "string"}, "description": "Attendee names"}},
                        ["title", "date", "start_time"])},
    {"name": "search_flights", "description": "Search for flights between two cities.",
     "parameters": _obj({"origin": _s("Departure city"), "destination": _s("Arrival city"),
                         "date": _s("Departure date as YYYY-MM-DD"), "passengers": _i("Number of passengers"),
                         "cabin": _s("Cabin class", enum=["economy", "premium_economy", "business", "first"])},
                        ["origin", "destination", "date"])},
    {"name": "book_restaurant", "description": "Reserve a table at a restaurant.",
     "parameters": _obj({"restaurant": _s("Restaurant name"), "date": _s("Date as YYYY-MM-DD"),
                         "time": _s("Time as HH:MM (24-hour)"), "party_size": _i("Number of guests")},
                        ["restaurant", "date", "time", "party_size"])},
    {"name": "set_timer", "description": "Start a countdown timer.",
     "parameters": _obj({"minutes": _i("Duration in minutes"), "label": _s("Optional label")}, ["minutes"])},
    {"name": "translate_text", "description": "Translate text into another language.",
     "parameters": _obj({"text": _s("Text to translate"),
                         "target_language": _s("Target language code", enum=["de", "es", "fr", "it", "pt"])},
                        ["text", "target_language"])},
    {"name": "get_stock_price", "description": "Get the latest price of a stock by its ticker symbol.",
     "parameters": _obj({"ticker": _s("Ticker symbol, e.g. AAPL")}, ["ticker"])},
    {"name": "create_task", "description": "Create a to-do item.",
     "parameters": _obj({"title": _s("Task title"), "due_date": _s("Due date as YYYY-MM-DD"),
                         "priority": _s("Priority", enum=["low", "medium", "high"]),
                         "tags": {"type": "array", "items": {"type": "string"}, "description": "Tags"}},
                        ["title"])},
    {"name": "search_products", "description": "Search the product catalogue.",
     "parameters": _obj({"query": _s("Search words"), "max_price": _n("Highest price to include"),
                         "filters": _obj({"category": _s("Product category"),
                                          "in_stock": {"type": "boolean", "description": "Only items in stock"}}, [])},
                        ["query"])},
    {"name": "create_user", "description": "Register a new user account.",
     "parameters": _obj({"profile": _obj({"name": _s("Full name"), "email": _s("Email address"),
                                          "address": _obj({"city": _s("City"), "country": _s("Country")},
                                                          ["city", "country"])},
                                         ["name", "email"])}, ["profile"])},
    {"name": "calculate_route", "description": "Plan a route between two places.",
     "parameters": _obj({"origin": _s("Start address or city"), "destination": _s("End address or city"),
                         "mode": _s("Travel mode", enum=["driving", "walking", "cycling", "transit"])},
                        ["origin", "destination"])},
    {"name": "add_contact", "description": "Save a contact in the address book.",
     "parameters": _obj({"name": _s("Contact name"), "phone": _s("Phone number"), "email": _s("Email address")},
                        ["name"])},
    {"name": "order_food", "description": "Order food for delivery.",
     "parameters": _obj({"restaurant": _s("Restaurant name"),
                         "items": {"type": "array", "description": "Dishes to order",
                                   "items": _obj({"name": _s("Dish name"), "quantity": _i("How many")},
                                                 ["name", "quantity"])},
                         "delivery": _obj({"address": _obj({"street": _s("Street and number"), "city": _s("City")},
                                                           ["street", "city"]),
                                           "time": _s("Delivery time as HH:MM")}, ["address"])},
                        ["restaurant", "items"])},
    {"name": "set_thermostat", "description": "Set the thermostat of a room.",
     "parameters": _obj({"room": _s("Room name"), "temperature": _n("Target temperature in degrees Celsius"),
                         "mode": _s("Mode", enum=["heat", "cool", "auto"])}, ["room", "temperature"])},
    {"name": "get_news", "description": "Fetch recent news articles on a topic.",
     "parameters": _obj({"topic": _s("Topic"), "max_results": _i("Maximum number of articles"),
                         "language": _s("Language code", enum=["de", "en", "es", "fr", "it", "pt"])}, ["topic"])},
    {"name": "schedule_meeting", "description": "Find a slot and schedule a meeting.",
     "parameters": _obj({"participants": {"type": "array", "items": {"type": "string"},
                                          "description": "Participant names"},
                         "duration_minutes": _i("Length in minutes"),
                         "window": _obj({"start_date": _s("Earliest date as YYYY-MM-DD"),
                                         "end_date": _s("Latest date as YYYY-MM-DD")}, ["start_date", "end_date"])},
                        ["participants", "duration_minutes"])},
]
CITIES = ["Lisbon", "Oslo", "Nairobi", "Lima", "Osaka", "Toronto", "Seville", "Krakow", "Melbourne", "Dublin",
          "Cairo", "Montreal", "Hamburg", "Porto", "Bologna", "Lyon", "Denver", "Seoul", "Bangkok", "Quito"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD"]
TICKERS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "TSLA", "IBM", "ORCL"]
RESTAURANTS = ["Casa Verde", "The Blue Door", "Sakura House", "Luigi's Kitchen", "Spice Route", "Harbor Grill"]
DISHES = ["margherita pizza", "pad thai", "falafel wrap", "miso soup", "caesar salad", "veggie burger", "ramen"]
ROOMS = ["living room", "bedroom", "kitchen", "office", "nursery"]
NEWS_TOPICS = ["renewable energy", "space exploration", "electric cars", "public health", "chess", "climate policy"]
LANG_NAMES = {"de": "German", "en": "English", "es": "Spanish", "fr": "French", "it": "Italian", "pt": "Portuguese"}
PHRASES = ["Where is the train station?", "The meeting starts at noon.", "Please close the window.",
           "I would like a cup of coffee.", "Thank you for your help.", "The museum opens tomorrow."]
TASK_TITLES = ["Renew passport", "Pay electricity bill", "Call the dentist", "Prepare slides", "Water the plants"]
SUBJECTS = [("Budget review", "Please send me the updated numbers by Friday."),
            ("Lunch tomorrow", "Are you free for lunch at one?"),
            ("Project kickoff", "The kickoff meeting moved to Tuesday."),
            ("Invoice 4471", "The invoice is attached; let me know if anything is missing.")]


def _date(rng: Rng) -> str:
    return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: Rng) -> str:
    return f"{rng.randint(7, 21):02d}:{rng.choice([0, 15, 30, 45]):02d}"


def _email(name: str) -> str:
    return f"{name.lower()}@example.com"


def _tool_request(rng: Rng, tool: str) -> tuple[str, dict[str, Any]]:
    """(user request, expected arguments) for one tool; every argument value is stated in the request."""
    if tool == "get_weather":
        city = rng.choice(CITIES)
        if rng.coin():
            unit = rng.choice(["celsius", "fahrenheit"])
            return f"What's the weather like in {city} right now? Give me the temperature in {unit}.", \
                {"city": city, "unit": unit}
        return f"Is it raining in {city} at the moment?", {"city": city}
    if tool == "convert_currency":
        amount, (a, b) = rng.randint(5, 5000), rng.sample(CURRENCIES, 2)
        return f"How much is {amount} {a} in {b}?", {"amount": amount, "from_currency": a, "to_currency": b}
    if tool == "send_email":
        name = rng.choice(NAMES)
        subject, body = rng.choice(SUBJECTS)
        return (f"Email {_email(name)} with the subject \"{subject}\" and the message \"{body}\"",
                {"to": _email(name), "subject": subject, "body": body})
    if tool == "create_calendar_event":
        title, date, start = rng.choice(["Dentist", "Team sync", "Yoga class", "Book club"]), _date(rng), _time(rng)
        args: dict[str, Any] = {"title": title, "date": date, "start_time": start}
        text = f"Put \"{title}\" in my calendar on {date} at {start}"
        if rng.coin():
            args["duration_minutes"] = rng.choice([30, 45, 60, 90])
            text += f" for {args['duration_minutes']} minutes"
        if rng.coin():
            args["attendees"] = rng.sample(NAMES, rng.randint(1, 3))
            text += " with " + " and ".join(args["attendees"])
        return text + ".", args
    if tool == "search_flights":
        (o, d), date = rng.sample(CITIES, 2), _date(rng)
        args = {"origin": o, "destination": d, "date": date}
        text = f"Find me flights from {o} to {d} on {date}"
        if rng.coin():
            args["passengers"] = rng.randint(2, 5)
            text += f" for {args['passengers']} passengers"
        if rng.coin():
            args["cabin"] = rng.choice(["economy", "business", "first"])
            text += f" in {args['cabin']} class"
        return text + ".", args
    if tool == "book_restaurant":
        r, date, t, n = rng.choice(RESTAURANTS), _date(rng), _time(rng), rng.randint(2, 8)
        return (f"Book a table for {n} at {r} on {date} at {t}.",
                {"restaurant": r, "date": date, "time": t, "party_size": n})
    if tool == "set_timer":
        m = rng.randint(1, 90)
        if rng.coin():
            label = rng.choice(["pasta", "laundry", "tea", "oven"])
            return f"Set a {m}-minute timer labelled \"{label}\".", {"minutes": m, "label": label}
        return f"Start a timer for {m} minutes.", {"minutes": m}
    if tool == "translate_text":
        text, code = rng.choice(PHRASES), rng.choice(["de", "es", "fr", "it", "pt"])
        return f"Translate \"{text}\" into {LANG_NAMES[code]}.", {"text": text, "target_language": code}
    if tool == "get_stock_price":
        t = rng.choice(TICKERS)
        return f"What is {t} trading at right now?", {"ticker": t}
    if tool == "create_task":
        title = rng.choice(TASK_TITLES)
        args = {"title": title}
        text = f"Add a to-do: \"{title}\""
        if rng.coin():
            args["due_date"] = _date(rng)
            text += f", due {args['due_date']}"
        if rng.coin():
            args["priority"] = rng.choice(["low", "medium", "high"])
            text += f", {args['priority']} priority"
        if rng.coin():
            args["tags"] = rng.sample(["home", "work", "urgent", "errand"], 2)
            text += f", tagged {args['tags'][0]} and {args['tags'][1]}"
        return text + ".", args
    if tool == "search_products":
        q = rng.choice(["running shoes", "desk lamp", "coffee grinder", "yoga mat", "backpack"])
        args = {"query": q}
        text = f"Search the shop for {q}"
        if rng.coin():
            args["max_price"] = rng.choice([25, 50, 80, 120])
            text += f" under {args['max_price']} dollars"
        if rng.coin():
            cat = rng.choice(["sports", "home", "kitchen", "outdoor"])
            args["filters"] = {"category": cat, "in_stock": True}
            text += f" in the {cat} category, only items in stock"
        return text + ".", args
    if tool == "create_user":
        name, city = rng.choice(NAMES), rng.choice(CITIES)
        country = {"Lisbon": "Portugal", "Porto": "Portugal", "Oslo": "Norway", "Nairobi": "Kenya", "Lima": "Peru",
                   "Osaka": "Japan", "Toronto": "Canada", "Montreal": "Canada", "Seville": "Spain",
                   "Krakow": "Poland", "Melbourne": "Australia", "Dublin": "Ireland", "Cairo": "Egypt",
                   "Hamburg": "Germany", "Bologna": "Italy", "Lyon": "France", "Denver": "United States",
                   "Seoul": "South Korea", "Bangkok": "Thailand", "Quito": "Ecuador"}[city]
        full = f"{name} {rng.choice(['Silva', 'Berg', 'Okafor', 'Tanaka', 'Novak', 'Rossi'])}"
        return (f"Create an account for {full}, email {_email(name)}, living in {city}, {country}.",
                {"profile": {"name": full, "email": _email(name), "address": {"city": city, "country": country}}})
    if tool == "calculate_route":
        (o, d), mode = rng.sample(CITIES, 2), rng.choice(["driving", "walking", "cycling", "transit"])
        return f"Plan a {mode} route from {o} to {d}.", {"origin": o, "destination": d, "mode": mode}
    if tool == "add_contact":
        name = rng.choice(NAMES)
        phone = f"+1-555-{rng.randint(1000, 9999)}"
        return (f"Save {name} as a contact: phone {phone}, email {_email(name)}.",
                {"name": name, "phone": phone, "email": _email(name)})
    if tool == "order_food":
        r = rng.choice(RESTAURANTS)
        dishes = rng.sample(DISHES, rng.randint(1, 3))
        items = [{"name": d, "quantity": rng.randint(1, 3)} for d in dishes]
        street, city = f"{rng.randint(1, 200)} {rng.choice(['Oak Street', 'Main Road', 'River Lane'])}", rng.choice(CITIES)
        delivery: dict[str, Any] = {"address": {"street": street, "city": city}}
        text = (f"Order from {r}: " + ", ".join(f"{i['quantity']} x {i['name']}" for i in items)
                + f", delivered to {street}, {city}")
        if rng.coin():
            delivery["time"] = _time(rng)
            text += f" at {delivery['time']}"
        return text + ".", {"restaurant": r, "items": items, "delivery": delivery}
    if tool == "set_thermostat":
        room, temp = rng.choice(ROOMS), rng.randint(16, 26)
        if rng.coin():
            mode = rng.choice(["heat", "cool", "auto"])
            return f"Set the {room} thermostat to {temp} degrees Celsius in {mode} mode.", \
                {"room": room, "temperature": temp, "mode": mode}
        return f"Make the {room} {temp} degrees Celsius.", {"room": room, "temperature": temp}
    if tool == "get_news":
        topic = rng.choice(NEWS_TOPICS)
        args = {"topic": topic}
        text = f"Show me the latest news about {topic}"
        if rng.coin():
            args["max_results"] = rng.randint(3, 10)
            text += f", at most {args['max_results']} articles"
        if rng.coin():
            code = rng.choice(["de", "es", "fr", "it", "pt"])
            args["language"] = code
            text += f", in {LANG_NAMES[code]}"
        return text + ".", args
    if tool == "schedule_meeting":
        people, minutes = rng.sample(NAMES, rng.randint(2, 4)), rng.choice([30, 45, 60])
        args = {"participants": people, "duration_minutes": minutes}
        text = f"Schedule a {minutes}-minute meeting with {', '.join(people)}"
        if rng.coin():
            start = _date(rng)
            end = start[:8] + f"{min(28, int(start[8:]) + rng.randint(1, 7)):02d}"
            if end == start:
                end = start[:8] + "28"
                start = start[:8] + "21"
            args["window"] = {"start_date": start, "end_date": end}
            text += f" sometime between {start} and {end}"
        return text + ".", args
    raise KeyError(tool)


def _leaves_and_depth(value: Any, depth: int = 0) -> tuple[int, int]:
    """(number of leaf values, nesting depth) of a JSON value: objects/arrays inside arguments add depth."""
    if isinstance(value, dict):
        parts = [_leaves_and_depth(v, depth + 1) for v in value.values()]
    elif isinstance(value, list):
        parts = [_leaves_and_depth(v, depth + 1) for v in value]
    else:
        return 1, depth
    return sum(p[0] for p in parts), max([p[1] for p in parts] + [depth])


def _tool_calls(rng: Rng) -> list[dict[str, Any]]:
    out = []
    for i in range(200):
        tool = TOOLS[i % len(TOOLS)]
        request, args = _tool_request(rng, tool["name"])
        n_tools = 1 + rng.below(8)
        others = [t for t in TOOLS if t["name"] != tool["name"]]
        shown = rng.shuffle([tool] + rng.sample(others, n_tools - 1))
        n_args, depth = _leaves_and_depth(args)
        call = {"name": tool["name"], "arguments": args}
        out.append({"tools": [t["name"] for t in shown], "request": request,
                    "call": json.dumps(call, ensure_ascii=False), "tool": tool["name"], "n_tools": n_tools,
                    "n_args": n_args, "nesting": max(0, depth - 1)})
    return out


def _tool_results(rng: Rng) -> list[dict[str, Any]]:
    out = []
    for i in range(160):
        kind = i % 4
        if kind == 0:
            city = rng.choice(CITIES)
            result = {"city": city, "temperature_c": rng.randint(-5, 35), "humidity_percent": rng.randint(20, 95),
                      "wind_kph": rng.randint(0, 60), "conditions": rng.choice(["sunny", "cloudy", "rain", "snow"])}
            field = rng.choice(["temperature_c", "humidity_percent", "wind_kph"])
            words = {"temperature_c": "temperature in degrees Celsius", "humidity_percent": "humidity in percent",
                     "wind_kph": "wind speed in km/h"}[field]
            call = {"name": "get_weather", "arguments": {"city": city}}
            question, answer = f"What is the {words} in {city}?", result[field]
        elif kind == 1:
            tickers = rng.sample(TICKERS, rng.randint(2, 4))
            prices = rng.sample(range(20, 900), len(tickers))  # distinct, so the highest is unique
            result = [{"ticker": t, "price": p} for t, p in zip(tickers, prices)]
            best = max(result, key=lambda q: q["price"])
            call = [{"name": "get_stock_price", "arguments": {"ticker": t}} for t in tickers]
            question, answer = "Which of these tickers has the highest price? Answer with the ticker only.", best["ticker"]
        elif kind == 2:
            (o, d), date = rng.sample(CITIES, 2), _date(rng)
            prices = rng.sample(range(80, 900), rng.randint(2, 5))  # distinct, so the cheapest is unique
            flights = [{"flight": f"{rng.choice(['RJ', 'TX', 'AV', 'LQ'])}{rng.randint(100, 999)}",
                        "price": p, "stops": rng.randint(0, 2)} for p in prices]
            result = {"origin": o, "destination": d, "date": date, "flights": flights}
            call = {"name": "search_flights", "arguments": {"origin": o, "destination": d, "date": date}}
            question = "What is the price of the cheapest flight? Answer with the number only."
            answer = min(f["price"] for f in flights)
        else:
            q = rng.choice(["running shoes", "desk lamp", "coffee grinder", "yoga mat", "backpack"])
            products = [{"name": f"{q} model {chr(65 + j)}", "price": rng.randint(10, 150),
                         "in_stock": rng.coin()} for j in range(rng.randint(2, 6))]
            result = {"query": q, "results": products}
            call = {"name": "search_products", "arguments": {"query": q}}
            question = "How many of the returned products are in stock? Answer with a number."
            answer = sum(p["in_stock"] for p in products)
        n_fields, depth = _leaves_and_depth(result)
        tool = call[0]["name"] if isinstance(call, list) else call["name"]
        out.append({"call": json.dumps(call), "result": json.dumps(result), "question": question,
                    "answer": str(answer), "tool": tool, "n_fields": n_fields, "nesting": max(0, depth - 1)})
    return out


def tool_pools() -> dict[str, Any]:
    return {
        "tools": _pool("Tool schemas (JSON-schema parameters).", TOOLS),
        "tool_calls": _pool("A user request, the names of the tools shown to the model (in order), and the one "
                            "expected call.",
                            _tool_calls(Rng("tool_calls"))),
        "tool_results": _pool("A tool call, its JSON result and a question answered from the result.",
                              _tool_results(Rng("tool_results"))),
    }


# =========================================================================== long context
DOC_KINDS = [
    {"title": "Maintenance log of the {site} research station", "noun": "storage room", "values": (1000, 9999),
     "facts": ["The access code for the {e} storage room is {v}.",
               "Staff were reminded that the {e} storage room opens with access code {v}."],
     "question": "What is the access code for the {e} storage room?",
     "pair": "What is the sum of the access codes of the {e} storage room and the {e2} storage room?",
     "count": "How many different storage rooms have their access code given in the log?",
     "which": "Which storage room has the access code {v}? Answer with its name only."},
    {"title": "Field journal of the {site} expedition", "noun": "camp", "values": (800, 5800),
     "facts": ["The {e} camp lies at an elevation of {v} metres.",
               "Our altimeter put the {e} camp at {v} metres above sea level."],
     "question": "At what elevation, in metres, is the {e} camp?",
     "pair": "What is the sum of the elevations, in metres, of the {e} camp and the {e2} camp?",
     "count": "How many different camps have their elevation recorded in the journal?",
     "which": "Which camp lies at {v} metres? Answer with its name only."},
    {"title": "Catalogue notes of the {site} library", "noun": "collection", "values": (1, 999),
     "facts": ["The {e} collection is kept on shelf {v}.", "Readers will find the {e} collection on shelf number {v}."],
     "question": "On which shelf number is the {e} collection kept?",
     "pair": "What is the sum of the shelf numbers of the {e} collection and the {e2} collection?",
     "count": "How many different collections have their shelf number given in the notes?",
     "which": "Which collection is kept on shelf {v}? Answer with its name only."},
    {"title": "Harvest report of the {site} cooperative", "noun": "orchard", "values": (200, 9000),
     "facts": ["The {e} orchard produced {v} kilograms of apples this season.",
               "This season the {e} orchard delivered {v} kilograms of apples to the press."],
     "question": "How many kilograms of apples did the {e} orchard produce this season?",
     "pair": "How many kilograms of apples did the {e} orchard and the {e2} orchard produce together?",
     "count": "How many different orchards have their apple harvest reported?",
     "which": "Which orchard produced {v} kilograms of apples? Answer with its name only."},
]
SYLLABLES_A = ["Bel", "Car", "Dun", "Ash", "Fen", "Glen", "Hol", "Kes", "Lark", "Mar", "Nor", "Oak", "Pen", "Ros",
               "Stan", "Thorn", "Wil", "Ath", "Brin", "Cal", "Ell", "Hart", "Ivy", "Quar"]
SYLLABLES_B = ["moor", "row", "haven", "ford", "wick", "dale", "ton", "mere", "ley", "brook", "field", "stead",
               "crest", "worth", "gate", "holm"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
THINGS = [("lantern", "lanterns"), ("ledger", "ledgers"), ("generator", "generators"), ("map", "maps"),
          ("radio", "radios"), ("water pump", "water pumps"), ("ladder", "ladders"), ("toolbox", "toolboxes"),
          ("archive box", "archive boxes"), ("microscope", "microscopes"), ("notice board", "notice boards")]
FILLER = [
    "On {day}, {name} reviewed the {thing} and noted that it was {adj}.",
    "{name} spent most of the morning sorting {things} near the east entrance.",
    "The weather stayed {weather} for most of the week, which slowed the work a little.",
    "A short meeting was held after lunch to discuss the {thing}.",
    "{name} and {name2} agreed to revisit the question of the {thing} later in the month.",
    "Several visitors asked about the {thing}, and {name} answered their questions patiently.",
    "The {thing} was moved to a new place to make room for incoming supplies.",
    "Nobody reported any problems with the {thing} during the afternoon shift.",
    "{name} wrote a brief note about the {things} and pinned it up by the door.",
    "By evening the team had finished cataloguing the {things}.",
    "It was decided that the {thing} would be inspected again on {day}.",
    "{name} suggested ordering more {things}, but the request was postponed.",
    "The old {thing} still works, although it makes a strange noise when it starts.",
    "A delivery of {things} arrived {when}.",
    "Everything was recorded in the logbook before the doors closed for the day.",
    "{name} counted the {things} twice to be sure the inventory was right.",
]
ADJS = ["in good condition", "slightly damaged", "dusty but usable", "freshly painted", "missing a cover"]
WEATHER = ["cold", "windy", "damp", "mild", "clear"]
WHEN = ["early in the morning", "just before noon", "late in the afternoon", "after dark"]


def _filler(rng: Rng) -> str:
    thing, things = rng.choice(THINGS)
    n1, n2 = rng.sample(NAMES, 2)
    return rng.choice(FILLER).format(day=rng.choice(DAYS), name=n1, name2=n2, thing=thing, things=things,
                                     adj=rng.choice(ADJS), weather=rng.choice(WEATHER), when=rng.choice(WHEN))


def _documents(rng: Rng) -> list[dict[str, Any]]:
    out = []
    depths = [0.0, 0.25, 0.5, 0.75, 1.0]
    for i in range(40):
        kind = DOC_KINDS[i % len(DOC_KINDS)]
        n_par = 3 + (i * 7) % 26
        n_dist = 1 + (i * 5) % 12
        names = rng.sample([a + b for a in SYLLABLES_A for b in SYLLABLES_B], n_dist + 2)
        site, entities = names[0], names[1:]
        lo, hi = kind["values"]
        values = rng.sample(range(lo, hi + 1), len(entities))
        paragraphs = [[_filler(rng) for _ in range(rng.randint(4, 6))] for _ in range(n_par)]
        needle_par = round(depths[i % 5] * (n_par - 1))
        placements = [needle_par] + [rng.below(n_par) for _ in range(n_dist)]
        for e, v, p in zip(entities, values, placements):
            sentence = rng.choice(kind["facts"]).format(e=e, v=v)
            paragraphs[p].insert(rng.below(len(paragraphs[p]) + 1), sentence)
        title = kind["title"].format(site=site)
        text = title + "\n\n" + "\n\n".join(" ".join(p) for p in paragraphs)
        e, v, e2, v2 = entities[0], values[0], entities[1], values[1]
        out.append({
            "text": text, "title": title, "n_words": _words(text), "n_paragraphs": n_par, "distractors": n_dist,
            "depth": round(needle_par / max(1, n_par - 1), 2), "needle_paragraph": needle_par + 1,
            "entity": e, "noun": kind["noun"],
            "question": kind["question"].format(e=e), "answer": str(v),
            "pair_question": kind["pair"].format(e=e, e2=e2), "pair_answer": str(v + v2),
            "count_question": kind["count"], "count_answer": str(len(entities)),
            "which_question": kind["which"].format(v=v), "which_answer": e,
        })
    return out


def long_context_pools() -> dict[str, Any]:
    return {"documents": _pool(
        "Generated multi-paragraph documents (title line, blank-line separated paragraphs) holding one needle fact "
        "and `distractors` facts of the same form about other entities; `depth` = needle paragraph / (paragraphs-1).",
        _documents(Rng("documents")))}


# =========================================================================== multilingual
# (code, English name, native name, level): level follows the usual learning-time ranking for English speakers
LANGUAGES = [("es", "Spanish", "español", 1.0), ("it", "Italian", "italiano", 1.0), ("pt", "Portuguese", "português", 1.0),
             ("fr", "French", "français", 1.5), ("de", "German", "Deutsch", 2.0)]
LEXICON_ORDER = ["es", "fr", "de", "it", "pt"]
LEXICON = [  # (en, *LEXICON_ORDER)
    ("dog", "perro", "chien", "Hund", "cane", "cão"), ("cat", "gato", "chat", "Katze", "gatto", "gato"),
    ("house", "casa", "maison", "Haus", "casa", "casa"), ("water", "agua", "eau", "Wasser", "acqua", "água"),
    ("bread", "pan", "pain", "Brot", "pane", "pão"), ("book", "libro", "livre", "Buch", "libro", "livro"),
    ("sun", "sol", "soleil", "Sonne", "sole", "sol"), ("moon", "luna", "lune", "Mond", "luna", "lua"),
    ("red", "rojo", "rouge", "rot", "rosso", "vermelho"), ("green", "verde", "vert", "grün", "verde", "verde"),
    ("blue", "azul", "bleu", "blau", "blu", "azul"), ("black", "negro", "noir", "schwarz", "nero", "preto"),
    ("white", "blanco", "blanc", "weiß", "bianco", "branco"), ("mother", "madre", "mère", "Mutter", "madre", "mãe"),
    ("father", "padre", "père", "Vater", "padre", "pai"), ("brother", "hermano", "frère", "Bruder", "fratello", "irmão"),
    ("sister", "hermana", "sœur", "Schwester", "sorella", "irmã"), ("apple", "manzana", "pomme", "Apfel", "mela", "maçã"),
    ("milk", "leche", "lait", "Milch", "latte", "leite"), ("tree", "árbol", "arbre", "Baum", "albero", "árvore"),
    ("city", "ciudad", "ville", "Stadt", "città", "cidade"), ("school", "escuela", "école", "Schule", "scuola", "escola"),
    ("window", "ventana", "fenêtre", "Fenster", "finestra", "janela"), ("door", "puerta", "porte", "Tür", "porta", "porta"),
    ("day", "día", "jour", "Tag", "giorno", "dia"), ("night", "noche", "nuit", "Nacht", "notte", "noite"),
    ("hand", "mano", "main", "Hand", "mano", "mão"), ("head", "cabeza", "tête", "Kopf", "testa", "cabeça"),
    ("bird", "pájaro", "oiseau", "Vogel", "uccello", "pássaro"), ("horse", "caballo", "cheval", "Pferd", "cavallo", "cavalo"),
    ("sea", "mar", "mer", "Meer", "mare", "mar"), ("flower", "flor", "fleur", "Blume", "fiore", "flor"),
    ("big", "grande", "grand", "groß", "grande", "grande"), ("small", "pequeño", "petit", "klein", "piccolo", "pequeno"),
    ("new", "nuevo", "nouveau", "neu", "nuovo", "novo"), ("old", "viejo", "vieux", "alt", "vecchio", "velho"),
    ("cold", "frío", "froid", "kalt", "freddo", "frio"), ("hot", "caliente", "chaud", "heiß", "caldo", "quente"),
    ("yes", "sí", "oui", "ja", "sì", "sim"), ("monday", "lunes", "lundi", "Montag", "lunedì", "segunda-feira"),
    ("friday", "viernes", "vendredi", "Freitag", "venerdì", "sexta-feira"),
    ("sunday", "domingo", "dimanche", "Sonntag", "domenica", "domingo"),
    ("good morning", "buenos días", "bonjour", "guten Morgen", "buongiorno", "bom dia"),
    ("good night", "buenas noches", "bonne nuit", "gute Nacht", "buonanotte", "boa noite"),
]
# number words 3..10 (1 and 2 are left out: their form depends on gender in several of these languages)
NUMBER_WORDS = {
    "es": ["tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez"],
    "fr": ["trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix"],
    "de": ["drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn"],
    "it": ["tre", "quattro", "cinque", "sei", "sette", "otto", "nove", "dieci"],
    "pt": ["três", "quatro", "cinco", "seis", "sete", "oito", "nove", "dez"],
}
ARITH_FRAMES = {  # op -> question in each language; the answer is a bare number
    "es": {"+": "¿Cuánto es {a} más {b}? Responde solo con el número.",
           "-": "¿Cuánto es {a} menos {b}? Responde solo con el número.",
           "*": "¿Cuánto es {a} multiplicado por {b}? Responde solo con el número.",
           "story": "{name} tiene {a} manzanas y compra {b} más. ¿Cuántas manzanas tiene ahora? Responde solo con el número."},
    "fr": {"+": "Combien font {a} plus {b} ? Réponds uniquement avec le nombre.",
           "-": "Combien font {a} moins {b} ? Réponds uniquement avec le nombre.",
           "*": "Combien font {a} multiplié par {b} ? Réponds uniquement avec le nombre.",
           "story": "{name} a {a} pommes et en achète {b} de plus. Combien de pommes a {name} maintenant ? "
                    "Réponds uniquement avec le nombre."},
    "de": {"+": "Wie viel ist {a} plus {b}? Antworte nur mit der Zahl.",
           "-": "Wie viel ist {a} minus {b}? Antworte nur mit der Zahl.",
           "*": "Wie viel ist {a} mal {b}? Antworte nur mit der Zahl.",
           "story": "{name} hat {a} Äpfel und kauft {b} dazu. Wie viele Äpfel hat {name} jetzt? Antworte nur mit der Zahl."},
    "it": {"+": "Quanto fa {a} più {b}? Rispondi solo con il numero.",
           "-": "Quanto fa {a} meno {b}? Rispondi solo con il numero.",
           "*": "Quanto fa {a} moltiplicato per {b}? Rispondi solo con il numero.",
           "story": "{name} ha {a} mele e ne compra altre {b}. Quante mele ha {name} adesso? Rispondi solo con il numero."},
    "pt": {"+": "Quanto é {a} mais {b}? Responda apenas com o número.",
           "-": "Quanto é {a} menos {b}? Responda apenas com o número.",
           "*": "Quanto é {a} vezes {b}? Responda apenas com o número.",
           "story": "{name} tem {a} maçãs e compra mais {b}. Quantas maçãs {name} tem agora? Responda apenas com o número."},
}


def multilingual_pools() -> dict[str, Any]:
    codes = [c for c, *_ in LANGUAGES]
    level = {c: lv for c, _, _, lv in LANGUAGES}
    name = {c: n for c, n, _, _ in LANGUAGES}
    lexicon = [{"en": row[0], **{c: row[1 + LEXICON_ORDER.index(c)] for c in codes}, "words": _words(row[0])}
               for row in LEXICON]
    numbers = [{"n": n, **{c: NUMBER_WORDS[c][n - 3] for c in codes}} for n in range(3, 11)]
    langid = []
    for row in lexicon:
        for c in codes:
            w = row[c]
            if sum(row2[c2].lower() == w.lower() for row2 in lexicon for c2 in codes) == 1:
                langid.append({"word": w, "lang": c, "language": name[c], "level": level[c], "en": row["en"]})
    rng = Rng("ml_arith")
    arith = []
    for i in range(200):
        c = codes[i % len(codes)]
        op = ["+", "-", "*", "story"][(i // len(codes)) % 4]
        a, b = rng.randint(2, 99), rng.randint(2, 99 if op != "*" else 12)
        if op == "-" and a < b:
            a, b = b, a
        q = ARITH_FRAMES[c][op].format(a=a, b=b, name=rng.choice(NAMES))
        value = a * b if op == "*" else a - b if op == "-" else a + b
        arith.append({"lang": c, "language": name[c], "level": level[c], "question": q, "answer": str(value),
                      "a": a, "b": b, "op": "+" if op == "story" else op, "words": _words(q)})
    return {
        "languages": _pool("Target languages; `level` ranks how hard they are for English speakers (1 = easiest).",
                           ({"code": c, "name": n, "native": nat, "level": lv} for c, n, nat, lv in LANGUAGES)),
        "lexicon": _pool("Words and short phrases with one standard translation in each language "
                         "(German nouns capitalised).", lexicon),
        "number_words": _pool("Number words 3..10.", numbers),
        "langid": _pool("Words that belong to exactly one of the five languages.", langid),
        "ml_arith": _pool("Arithmetic questions written in one of the languages; answer is a bare number.", arith),
    }


# =========================================================================== steerability
WRITING_TOPICS = [
    "a rainy day in the city", "the benefits of walking", "how to care for a houseplant", "your favourite season",
    "a visit to a museum", "learning to cook", "a small village by the sea", "why sleep matters",
    "the history of the bicycle", "a day without the internet", "tips for saving money", "the life of a honeybee",
    "planning a picnic", "an old lighthouse", "the joy of reading", "public libraries", "learning a new language",
    "a mountain hike", "recycling at home", "a night sky full of stars",
]
REQUIRED = ["river", "lantern", "balance", "window", "garden", "patience", "bridge", "morning"]
FORBIDDEN = ["very", "really", "thing", "good", "nice", "just"]
STARTS = ["In short", "Here is my answer", "To begin with"]
ENDS = ["That is all.", "Thanks for reading.", "The end."]
CONFLICTS = {frozenset(p) for p in [("lowercase", "uppercase"), ("num_bullets", "num_sentences_max"),
                                    ("num_bullets", "starts_with"), ("num_bullets", "ends_with"),
                                    ("uppercase", "required_words"), ("uppercase", "forbidden_words")]}
RULE_KINDS = ["max_words", "min_words", "required_words", "forbidden_words", "lowercase", "uppercase", "num_bullets",
              "starts_with", "ends_with", "num_sentences_max"]


def _quoted(words: Sequence[str]) -> str:
    q = [f'"{w}"' for w in words]
    return q[0] if len(q) == 1 else ", ".join(q[:-1]) + " and " + q[-1]


def _rule_set(rng: Rng, n: int) -> dict[str, Any]:
    kinds: list[str] = []
    for k in rng.shuffle(list(RULE_KINDS)):
        if len(kinds) < n and all(frozenset((k, j)) not in CONFLICTS for j in kinds):
            kinds.append(k)
    case = "lower" if "lowercase" in kinds else "upper" if "uppercase" in kinds else None

    def cased(t: str) -> str:
        return t.lower() if case == "lower" else t.upper() if case == "upper" else t

    rules, instructions = [], []
    for k in kinds:
        if k == "max_words":
            v = rng.choice([60, 80, 120, 150])
            rules.append(f"Use at most {v} words."), instructions.append({"type": k, "n": v})
        elif k == "min_words":
            v = rng.choice([20, 30])
            rules.append(f"Use at least {v} words."), instructions.append({"type": k, "n": v})
        elif k == "required_words":
            ws = rng.sample(REQUIRED, rng.randint(1, 2))
            rules.append(f"Include the word{'s' * (len(ws) > 1)} {_quoted(ws)}.")
            instructions.append({"type": k, "words": ws})
        elif k == "forbidden_words":
            ws = rng.sample(FORBIDDEN, rng.randint(1, 2))
            rules.append(f"Do not use the word{'s' * (len(ws) > 1)} {_quoted(ws)}.")
            instructions.append({"type": k, "words": ws})
        elif k == "lowercase":
            rules.append("Write the whole answer in lowercase letters."), instructions.append({"type": k})
        elif k == "uppercase":
            rules.append("Write the whole answer in capital letters."), instructions.append({"type": k})
        elif k == "num_bullets":
            v = rng.randint(2, 5)
            rules.append(f'Format the answer as exactly {v} bullet points, each starting with "- ".')
            instructions.append({"type": k, "n": v})
        elif k == "starts_with":
            t = cased(rng.choice(STARTS))
            rules.append(f'Start your answer with "{t}".'), instructions.append({"type": k, "text": t})
        elif k == "ends_with":
            t = cased(rng.choice(ENDS))
            rules.append(f'End your answer with "{t}".'), instructions.append({"type": k, "text": t})
        else:
            v = rng.randint(2, 4)
            rules.append(f"Use no more than {v} sentences."), instructions.append({"type": k, "n": v})
    return {"rules_text": "\n".join(f"- {r}" for r in rules), "rules_inline": " ".join(rules),
            "instructions": instructions, "n_rules": len(rules)}


JSON_SUBJECTS = [
    ("a fictional book", ["title", "author", "year", "genre", "pages"]),
    ("a city you would like to visit", ["name", "country", "population", "famous_for", "best_season"]),
    ("a simple recipe", ["name", "ingredients", "steps", "prep_minutes", "servings"]),
    ("a movie", ["title", "director", "year", "genre", "rating"]),
    ("a job posting", ["title", "company", "location", "salary", "remote"]),
    ("a product for sale", ["name", "price", "category", "in_stock", "rating"]),
    ("a fictional person", ["name", "age", "occupation", "hobbies", "city"]),
    ("a weekend trip", ["destination", "days", "budget", "activities", "transport"]),
    ("a pet", ["name", "species", "age", "favourite_food", "colour"]),
    ("a planet in a science-fiction story", ["name", "moons", "climate", "population", "discovered_by"]),
]
LIST_WORDS = ["anchor", "basket", "candle", "dolphin", "engine", "feather", "guitar", "harbor", "island", "jacket",
              "kettle", "lemon", "magnet", "needle", "orchid", "pepper", "quilt", "rocket", "saddle", "tunnel",
              "umbrella", "violin", "walnut", "yogurt", "zipper", "bridge", "cactus", "donkey", "falcon", "garlic"]


def steerability_pools() -> dict[str, Any]:
    rng = Rng("rule_sets")
    rule_sets = [_rule_set(rng, 1 + i % 5) for i in range(250)]
    rng = Rng("json_schemas")
    schemas = []
    for subject, keys in JSON_SUBJECTS:
        for k in range(1, 6):
            for _ in range(2):
                picked = set(rng.sample(keys, k))
                chosen = [key for key in keys if key in picked]
                schemas.append({"subject": subject, "keys": chosen, "keys_text": _quoted(chosen), "n_fields": k,
                                "instructions": [{"type": "json_object", "keys": chosen}]})
    rng = Rng("word_lists")
    lists = []
    while len(lists) < 200:
        ws = rng.sample(LIST_WORDS, 3 + len(lists) % 6)
        lengths = sorted((len(w) for w in ws), reverse=True)
        if lengths[0] == lengths[1]:
            continue  # the longest word must be unique
        lists.append({"words_text": ", ".join(ws), "n": len(ws), "sorted_json": json.dumps(sorted(ws)),
                      "reversed_text": ", ".join(reversed(ws)), "upper_text": " | ".join(w.upper() for w in ws),
                      "initials": "".join(w[0] for w in ws), "longest": max(ws, key=len),
                      "long_count": sum(len(w) > 6 for w in ws)})
    return {
        "rule_sets": _pool("Compatible sets of checkable writing rules; `instructions` is what the metric checks.",
                           rule_sets),
        "writing_topics": _pool("Topics for short writing tasks.", ({"topic": t} for t in WRITING_TOPICS)),
        "json_schemas": _pool("JSON objects to produce: subject and the exact keys.", schemas),
        "word_lists": _pool("Word lists with exactly computed re-formattings.", lists),
    }


# =========================================================================== main
BUILDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "knowledge": knowledge_pools, "math": math_pools, "reasoning": reasoning_pools, "code": code_pools,
    "tools": tool_pools, "long_context": long_context_pools, "multilingual": multilingual_pools,
    "steerability": steerability_pools,
}


def render(pools: dict[str, Any]) -> str:
    """One record per line (compact, diff-friendly), pools and keys sorted."""
    def dump(x: Any) -> str:
        return json.dumps(x, sort_keys=True, ensure_ascii=False)

    blocks = []
    for name in sorted(pools):
        recs = ",\n".join("  " + dump(r) for r in pools[name]["records"])
        blocks.append(f" {dump(name)}: {{\"doc\": {dump(pools[name]['doc'])}, \"records\": [\n{recs}\n ]}}")
    return "{\n" + ",\n".join(blocks) + "\n}\n"


def build() -> dict[str, str]:
    """{file name: exact file text} for every pool file."""
    return {f"{name}.json": render(fn()) for name, fn in BUILDERS.items()}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report whether the files are up to date")
    ap.add_argument("--out", type=Path, default=POOL_DIR)
    args = ap.parse_args(argv)
    stale = []
    for name, text in build().items():
        path = args.out / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("stale pool files: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
