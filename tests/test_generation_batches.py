"""Length-sorted generation chunks: bounded prefill, every prompt once, results in input order."""

import numpy as np
from hypothesis import given, settings, strategies as st

from read_jax.generation_batches import generate_in_chunks, length_chunks
from read_jax.models import DecoderConfig, init_decoder
from read_jax.sampling import bucket, generate


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 3000), min_size=1, max_size=80), st.integers(1, 64), st.integers(1 << 10, 1 << 24),
       st.booleans())
def test_chunks_cover_every_prompt_once_within_the_bound(lengths, max_rows, budget, one_bucket):
    chunks = length_chunks(lengths, max_rows, budget, one_bucket)
    assert sorted(i for c in chunks for i in c) == list(range(len(lengths)))
    for c in chunks:
        assert len(c) <= max_rows
        longest = bucket(max(lengths[i] for i in c))
        assert len(c) == 1 or len(c) * longest * longest <= budget
        if one_bucket:
            assert len({bucket(lengths[i]) for i in c}) == 1


def test_chunked_greedy_generation_equals_one_prompt_at_a_time():
    model = init_decoder(DecoderConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                       max_position_embeddings=512), 0)
    rng = np.random.default_rng(0)
    prompts = [list(rng.integers(1, 64, n)) for n in (3, 200, 5, 120, 9)]
    out = generate_in_chunks(model, prompts, max_rows=2, budget=2 * 256 * 256, max_new_tokens=6, eos_id=[])
    assert len(length_chunks([len(p) for p in prompts], 2, 2 * 256 * 256)) > 1
    for p, toks in zip(prompts, out.tokens):
        assert toks == generate(model, [p], max_new_tokens=6, eos_id=[]).tokens[0]
