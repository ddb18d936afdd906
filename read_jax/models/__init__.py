"""Models: one config-driven NNX decoder, with Hugging Face import and export.

```python
from read_jax.models import load_hf, save_hf
model, config = load_hf("path/to/hf_dir", dtype="float32", mesh=None)
logits = model(input_ids)                                   # int32 [B, T] -> float32 [B, T, V]
logits = model(input_ids, attention_mask=mask, positions=pos)
save_hf(model, "path/to/out_dir")                           # loadable by transformers
```
"""

from read_jax.models.config import DecoderConfig, RopeConfig
from read_jax.models.decoder import Decoder, init_decoder
from read_jax.models.hf import encode_prompt, load_hf, load_tokenizer, read_hf_config, save_hf
from read_jax.models.kv_cache import KVCache

__all__ = [
    "Decoder", "DecoderConfig", "KVCache", "RopeConfig", "encode_prompt", "init_decoder", "load_hf",
    "load_tokenizer", "read_hf_config", "save_hf",
]
