"""The sampler benchmark's weight-stream floor reads exactly the matrices a decode step reads."""

import pytest

from read_jax.bench.sampler import weight_stream_floor
from read_jax.models import DecoderConfig, init_decoder


@pytest.mark.parametrize("tied", [False, True])
def test_floor_counts_every_matrix_of_a_decode_step(tied):
    c = DecoderConfig(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=tied)
    per_layer = 32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 48  # q, k + v, o, gate + up + down
    expected = 4 * (2 * per_layer + 96 * 32)  # float32; the output head (tied: the embedding, transposed)
    floor = weight_stream_floor(init_decoder(c, seed=0), batch=2, steps=2, repeats=1)
    assert floor["weight_bytes_per_step"] == expected
    assert floor["seconds_per_step"] > 0 and floor["tokens_per_s_ceiling"] == pytest.approx(2 / floor["seconds_per_step"])
