"""The embedded synthetic capability world (see `world.World`).

Each capability is a template family with typed slots, difficulty factors and an
exact-match scorer.  Two settings matter in practice:

- `WorldConfig()` ("default"): steerability on random strings, reasoning over chains of
  '>' facts given in the prompt, key-value lookup with arbitrary two-letter keys.  The
  last three need *binding* content inside the prompt (an induction-style circuit).  An
  0.8M-parameter character model stayed near chance on reasoning and key-value lookup after
  3000 steps of the mixture, and on 3-pair key-value lookup alone after 1000 steps; HF's
  torch Llama of the same shape did no better on the lookup in 525 steps.
- `WorldConfig.preset("tiny")`, the world of the shipped teacher and student: single-digit
  arithmetic, 1-op formatting of the world's nouns, two-hop reasoning over the knowledge
  base (who is older, do two entities share a city: two recalls and a comparison), record
  lookup (`name=.. city=.. pet=..; get pet`: 2-4 typed fields in random order), lists of
  2-3 digits with depth-1 programs, tool calls with arguments <= 20, 1-2 word phrases.

Shared by both: general_knowledge is 16 entities x 4 attributes (names are 3 letters with
distinct first letters); tool_use copies arguments into a fixed call format; multilingual
translates word by word through a 36-entry lexicon (24 nouns, 10 digit words, 2 operator
words; numerals are digit words joined by '-').  The composite tasks keep their formats in
every preset (fact_reason uses '>' chains, lookup_translate arbitrary keys).

Downstream tasks (`World.tasks`): six *composite* tasks (two skills inside one answer, single
pass), two *workloads* (requests of single capabilities mixed by a hidden true r) and four
*chained* tasks (two skills asked one after the other, `chain_tasks`), whose steps lie in the
`tiny` preset's capability ranges.

Harder or easier worlds: raise / lower the `WorldConfig` knobs (digits, pairs, items, list
length, styles), or start from `WorldConfig.preset("tiny" | "default" | "hard")`.
"""

from read_jax.worlds.chain_tasks import CHAIN_SPECS
from read_jax.worlds.data import WorldConfig, WorldData
from read_jax.worlds.tasks import TASK_SPECS, WORKLOAD_SPECS, TaskSpec, WorkloadSpec
from read_jax.worlds.tokenizer import (
    CHARSET,
    SEP,
    build_tokenizer,
    encode_example,
    encode_world_prompt,
    in_vocab,
)
from read_jax.worlds.world import World

__all__ = [
    "CHAIN_SPECS",
    "CHARSET",
    "SEP",
    "TASK_SPECS",
    "WORKLOAD_SPECS",
    "WorkloadSpec",
    "TaskSpec",
    "World",
    "WorldConfig",
    "WorldData",
    "build_tokenizer",
    "encode_example",
    "encode_world_prompt",
    "in_vocab",
]
