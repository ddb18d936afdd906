"""The embedded synthetic capability world (see `world.World`).

Why the defaults should be learnable by a ~1-3 M-parameter character decoder trained
from scratch on a 2-core CPU in minutes (each capability is a short, local skill):

- general_knowledge: 16 entities x 4 attributes = 64 memorised facts; names are 3
  letters with distinct first letters, so one character identifies the entity.
- steerability: words of 3-6 characters, at most 2 of {upper, rev, wrap, twice}.
- reasoning: chains of 3-4 entities given as shuffled 'a>b' facts; max / min / a>b?.
- math: +, - on 1-2 digit operands, * on single digits (answers <= 3 characters).
- code: lists of 2-4 single digits, expressions of depth <= 2.
- tool_use: 5 tools, <= 3 arguments copied from the request into a fixed call format.
- long_context: 2-4 key=value pairs, 2-letter keys, values from a 24-word vocabulary.
- multilingual: 1-3 word phrases, word-by-word through a 36-entry lexicon (24 nouns,
  10 digit words, 2 operator words); numerals are digit words joined by '-'.

Prompts stay under ~70 characters and answers under ~20 (`max_lengths()` measures).
Harder or easier worlds: raise / lower the `WorldConfig` knobs (digits, pairs, items,
list length), or start from `WorldConfig.preset("tiny" | "default" | "hard")`.
"""

from read_jax.worlds.data import WorldConfig, WorldData
from read_jax.worlds.tasks import TASK_SPECS, TaskSpec
from read_jax.worlds.tokenizer import (
    CHARSET,
    SEP,
    build_tokenizer,
    encode_example,
    encode_prompt,
    in_vocab,
)
from read_jax.worlds.world import World

__all__ = [
    "CHARSET",
    "SEP",
    "TASK_SPECS",
    "TaskSpec",
    "World",
    "WorldConfig",
    "WorldData",
    "build_tokenizer",
    "encode_example",
    "encode_prompt",
    "in_vocab",
]
