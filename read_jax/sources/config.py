"""Settings of the real data source (``source: real`` in an experiment config)."""

from __future__ import annotations

import dataclasses

from read_jax.errors import ReadJaxError


@dataclasses.dataclass(frozen=True)
class RealSourceConfig:
    """Models come from the experiment's ``teacher`` / ``student`` specs; this names the rest.

    The target task (``loop.task``) is looked up first among ``pack_tasks`` (tasks built from
    the capability pack's verifiable templates), then in the ``cards`` file (benchmarks).
    """

    pack: str = "read8"                 # capability template pack: a packaged name or a directory
    cards: str = ""                     # task cards YAML (read_jax's shape or the official artifact's)
    # tasks built from the pack: name -> capability mixture of its items, e.g. {math: 0.5, tool_use: 0.5}
    pack_tasks: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    pack_task_sizes: tuple[int, ...] = (24, 48)  # (profiling split, test split) of each pack task
    extra_evals: tuple[str, ...] = ()   # further tasks (pack or cards) scored on the initial and every final student
    eval_limit: int = 0                 # score the first N test items of card tasks (0: all)
    tokenizer: str = ""                 # a tokenizer directory (default: the teacher's)
    chat_template: str = ""             # a Jinja chat template file, for tokenizers that have none
    dtype: str = "float32"
    data_dir: str = ""                  # tensorflow-datasets data_dir for `source: hf` cards
    # device mesh (data, fsdp, tp) the models are loaded onto and run on, one entry may be -1 (all the
    # devices left); empty: one device
    mesh: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.pack_task_sizes) != 2 or min(self.pack_task_sizes) < 1:
            raise ReadJaxError(f"real.pack_task_sizes: expected [profiling, test] sizes >= 1, "
                               f"got {list(self.pack_task_sizes)}")
        if self.eval_limit < 0:
            raise ReadJaxError(f"real.eval_limit must be >= 0, got {self.eval_limit}")
        if self.mesh and (len(self.mesh) != 3 or any(m == 0 or m < -1 for m in self.mesh)):
            raise ReadJaxError(f"real.mesh: expected [data, fsdp, tp] sizes >= 1 (one may be -1), got {list(self.mesh)}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ReadJaxError(f"real.dtype: expected float32 or bfloat16, got {self.dtype!r}")
        for name, mix in self.pack_tasks.items():
            if not isinstance(mix, dict) or not mix or any(not isinstance(v, (int, float)) or v < 0
                                                          for v in mix.values()):
                raise ReadJaxError(f"real.pack_tasks.{name}: expected a mapping capability -> weight >= 0")
