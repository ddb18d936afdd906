"""One experiment: a task, a budget, several policies at equal budget, one report.

Used by `read-jax demo` (a preset) and `read-jax run CONFIG` (any config).  An experiment
directory holds ``experiment.json`` (the config), ``requirement.json`` (r estimated once per
task, not charged to the budget), one run directory per policy (``history.jsonl`` and orbax
checkpoints), ``report.json`` and the plots.  Every stage that is already on disk is reused,
so ``read-jax run --resume DIR`` finishes an interrupted experiment where it stopped.

The config is in `config`, the requirement stage in `requirement`, the directory's consistency
checks in `files`, the report's table and overhead in `report`, and the `Experiment` in `core`.
"""

from read_jax.experiment.config import REQUIREMENT_MODES, SEARCH_POLICIES, ExperimentConfig
from read_jax.experiment.core import Experiment
from read_jax.experiment.files import VERSION_FILE, _with_defaults
from read_jax.experiment.report import OVERHEAD_PHASES, format_table, overhead_share
from read_jax.experiment.requirement import IDENTIFIER_SEED, RequirementStage
from read_jax.sources import build_components  # imported from here by older code and tests

__all__ = ["Experiment", "ExperimentConfig", "RequirementStage", "format_table", "overhead_share",
           "build_components", "_with_defaults", "REQUIREMENT_MODES", "SEARCH_POLICIES", "IDENTIFIER_SEED",
           "VERSION_FILE", "OVERHEAD_PHASES"]
