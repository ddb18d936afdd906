"""Random tiny teacher and student on the synthetic world: the loop's machinery at test speed."""

from read_jax.sources import Components
from read_jax.models import DecoderConfig, init_decoder
from read_jax.worlds import World
from read_jax.worlds.rationales import cot_prompt
from read_jax.worlds.tokenizer import encode_world_prompt


def tiny_components(task: str) -> Components:
    world = World(0)
    tok = world.tokenizer()

    def config(d, layers):
        return DecoderConfig(vocab_size=len(tok), hidden_size=d, intermediate_size=2 * d, num_hidden_layers=layers,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=d // 4, tie_word_embeddings=True,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)

    return Components(source=world, task=world.task(task), teacher=init_decoder(config(64, 2), 0),
                      student=init_decoder(config(32, 1), 1), tokenizer=tok,
                      encode_prompt=lambda p: encode_world_prompt(tok, p), task_names=tuple(world.task_names),
                      load_task=world.task, encode_rationale_prompt=lambda p: encode_world_prompt(tok, cot_prompt(p)))


def save_tiny_pair(root, task: str = "dev_assistant"):
    """The tiny random teacher and student saved as HF directories under ``root`` (for `read-jax run`
    configs, which name models by directory): (teacher dir, student dir)."""
    from read_jax.models import save_hf

    components = tiny_components(task)
    save_hf(components.teacher, root / "teacher")
    save_hf(components.student, root / "student")
    return root / "teacher", root / "student"
