"""The shipped teacher and student checkpoints against the issue's thresholds, and (slow) the
teacher recipe re-run from scratch.

The fast tests load the checkpoints the package ships (`read_jax/worlds/assets/`, keyed by the
recipe hash) and score them with the world's exact-match scorer on fresh examples (not the
probe suite, not a task's dev/test split).  `pytest -m slow tests/test_recipes.py` retrains the
teacher recipe (tens of minutes on a 2-core CPU) and checks the same threshold.
"""

import numpy as np
import pytest

from read_jax.worlds.recipe import (STUDENT, TEACHER, acceptance_accuracy, asset_dir, capability_accuracy,
                                    load_or_train, train, training_stream)

THRESHOLD = 0.9
RATIONALE_THRESHOLD = 0.85  # rationale and answer must both match: a stricter score than the answer's


@pytest.fixture(scope="module")
def world():
    return TEACHER.world()


@pytest.fixture(scope="module")
def teacher(world):
    assert (asset_dir(TEACHER) / "config.json").is_file(), f"the package ships {asset_dir(TEACHER).name}"
    return load_or_train(TEACHER, world, progress=False)


def test_recipes_share_the_world():
    assert (STUDENT.world_seed, STUDENT.world_preset) == (TEACHER.world_seed, TEACHER.world_preset)


# Scored by `acceptance_accuracy` (256 fresh examples per capability).  The shipped teacher
# (recipe.json): 1.0 on six capabilities, multilingual 0.99, code 0.93.


def test_shipped_teacher_reaches_the_target_on_every_capability(teacher, world):
    acc = acceptance_accuracy(teacher, world)
    assert min(acc.values()) >= THRESHOLD, acc


def test_shipped_student_is_small_and_weak_but_not_blank(teacher, world):
    assert (asset_dir(STUDENT) / "config.json").is_file(), f"the package ships {asset_dir(STUDENT).name}"
    student = load_or_train(STUDENT, world, progress=False)
    assert student.config.num_params() <= teacher.config.num_params() / 4
    acc = capability_accuracy(student, world, n_per_capability=64, seed=11)
    weak = [c for c, a in acc.items() if a <= 0.5]
    assert len(weak) > len(acc) / 2, acc            # weak on most capabilities
    assert np.mean(list(acc.values())) > 0.02, acc  # but not at zero


def test_student_never_trains_on_workload_evaluation_prompts(world):
    """Workload requests are ordinary capability prompts; the student's stream skips their dev / test
    / exemplar prompts (its starting utility would otherwise partly be recall)."""
    assert STUDENT.hold_out_workload_evals and not TEACHER.hold_out_workload_evals
    held_out = {e.prompt for t in world.tasks if t.name not in world.composite_task_names for e in t.dev + t.test}
    assert held_out
    stream = training_stream(world, STUDENT)
    assert not any(next(stream).prompt in held_out for _ in range(5000))


@pytest.mark.slow
def test_teacher_recipe_reaches_the_threshold(world):
    model, log = train(TEACHER, world=world, progress=False)
    acc = acceptance_accuracy(model, world)
    assert min(acc.values()) >= THRESHOLD, (acc, log["seconds"])


def test_shipped_teacher_gives_rationales_when_asked(teacher, world):
    """The CoT teacher signal: asked with the rationale mark, the teacher writes the world's rationale
    and then the answer, both exactly (recipe.json: 1.0 on five capabilities, 0.996 on reasoning and
    tool use, 0.91 on multilingual, 0.89 on code); asked without it, it answers as before (above)."""
    acc = acceptance_accuracy(teacher, world, rationale=True)
    assert min(acc.values()) >= RATIONALE_THRESHOLD, acc


def test_the_loop_asks_the_teacher_for_rationales_and_trains_the_student_on_the_plain_prompt(tmp_path, world):
    from read_jax.experiment import ExperimentConfig
    from read_jax.loop import GenerationConfig, LoopConfig, ReadRun
    from read_jax.loop.collect import IntervalWork
    from read_jax.sources import build_components
    from read_jax.worlds.rationales import COT_MARK

    generation = GenerationConfig(max_new_tokens=64, prompts_per_call=32, temperature=0.0, rationale=True)
    config = ExperimentConfig(loop=LoopConfig(task="dev_assistant", budget_tokens=50_000, intervals=1,
                                              probes_per_capability=2, generation=generation), policies=("uniform",))
    components = build_components(config)
    run = ReadRun.open(config.loop, components, tmp_path, np.full(8, 1 / 8), progress=False)
    spent = IntervalWork(per_cap=np.zeros(8)).spent
    prompts, prompt_ids, out = run._generate(np.full(8, 1 / 8), 32, 0, spent)
    examples, _ = run._examples(prompts, prompt_ids, out, spent)
    tok = components.tokenizer
    assert len(examples) >= 28
    matches = 0
    for prompt, ex in zip(prompts, examples):
        text = tok.decode(ex.prompt, skip_special_tokens=True)
        assert text.strip() == prompt.prompt and COT_MARK not in text  # the student's prompt is the plain one
        response = tok.decode(ex.response, skip_special_tokens=True)
        matches += response == world.with_rationale(prompt).answer
    assert matches >= 0.85 * len(examples)
