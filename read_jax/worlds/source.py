"""The synthetic world as a data source (`read_jax.sources`): world, task, recipe models, tokenizer."""

from __future__ import annotations

from typing import Any

from read_jax.errors import ReadJaxError
from read_jax.sources import Components, check_context, check_policies


def _load_model(spec: str, config: Any, world, field: str, mesh=None):
    from read_jax.models import load_hf
    from read_jax.sharding import shard_module
    from read_jax.worlds import recipe

    if spec.startswith("recipe:"):
        name = spec.split(":", 1)[1]
        if name not in recipe.RECIPES_BY_NAME:
            raise ReadJaxError(f"{field}: unknown recipe {name!r}; choose one of "
                               f"{', '.join('recipe:' + n for n in sorted(recipe.RECIPES_BY_NAME))} or an HF directory")
        chosen = recipe.RECIPES_BY_NAME[name]
        if (chosen.world_seed, chosen.world_preset) != (config.world_seed, config.world_preset):
            raise ReadJaxError(f"{field}: recipe {name!r} trains on world seed {chosen.world_seed} preset "
                               f"{chosen.world_preset!r}, but world_seed={config.world_seed} "
                               f"world_preset={config.world_preset!r} is configured")
        model = recipe.load_or_train(chosen, world=world)
        return model if mesh is None else shard_module(model, mesh)
    try:
        return load_hf(spec, mesh=mesh)[0]
    except ReadJaxError as err:  # name the config field: the path alone does not say which model it is
        raise type(err)(f"{field}: {err}") from None


def build_components(config: Any) -> Components:
    """World ``config.world_seed`` / ``config.world_preset``, task ``config.loop.task``, the
    recipe (or HF-directory) teacher and student on the world's character tokenizer, on the
    configured ``mesh`` (none: one device, or with several processes all of them data-parallel)."""
    from read_jax.sharding import configured_mesh
    from read_jax.worlds import World, WorldConfig
    from read_jax.worlds.rationales import cot_prompt
    from read_jax.worlds.tokenizer import encode_world_prompt

    world = World(config.world_seed, WorldConfig.preset(config.world_preset))
    if config.loop.task not in world.task_names:
        raise ReadJaxError(f"loop.task: unknown task {config.loop.task!r}; choose one of {', '.join(world.task_names)}")
    check_policies(config, world.capabilities)
    tokenizer = world.tokenizer()
    mesh = configured_mesh(tuple(getattr(config, "mesh", ()) or ()), "mesh")
    teacher = _load_model(config.teacher, config, world, "teacher", mesh)
    student = _load_model(config.student, config, world, "student", mesh)
    models = (("teacher", teacher, config.teacher), ("student", student, config.student))
    for name, model, spec in models:
        if model.config.vocab_size != len(tokenizer):
            raise ReadJaxError(f"{name} {spec}: vocabulary size {model.config.vocab_size} (config.json vocab_size) "
                               f"differs from the world tokenizer's {len(tokenizer)}; use a model built on this "
                               f"world's tokenizer (world_seed={config.world_seed})")
    check_context(config, [(name, model.config, spec if spec.startswith("recipe:") else f"{spec}/config.json")
                           for name, model, spec in models])
    return Components(source=world, task=world.task(config.loop.task), teacher=teacher, student=student,
                      tokenizer=tokenizer, encode_prompt=lambda p: encode_world_prompt(tokenizer, p), mesh=mesh,
                      description={"source": "world", "world_seed": config.world_seed,
                                   "world_preset": config.world_preset},
                      task_names=tuple(world.task_names), load_task=world.task,
                      encode_rationale_prompt=lambda p: encode_world_prompt(tokenizer, cot_prompt(p)))
