"""Teacher generation: a jitted KV-cache sampler over the model's own forward pass, which can also
hand back the teacher's top-k log-probs.

- `rule`: the sampling rule (greedy / temperature / top-k / top-p, log-probs);
- `decode`: the jitted prefill and decode-loop programs;
- `sampler`: `Sampler` / `generate` / `generate_text`, bucketing and the host-side API.
"""

from read_jax.sampling.decode import cache_phases, compile_count
from read_jax.sampling.rule import sample_logits
from read_jax.sampling.sampler import (MIN_PROMPT_BUCKET, GenerateOutput, Sampler, bucket, generate,
                                       generate_text)

__all__ = ["GenerateOutput", "MIN_PROMPT_BUCKET", "Sampler", "bucket", "cache_phases", "compile_count", "generate",
           "generate_text", "sample_logits"]
