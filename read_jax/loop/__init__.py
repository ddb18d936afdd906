"""The ReAD outer loop: its configuration (`config`) and the resumable run (`run`)."""

from read_jax.loop.config import BanditConfig, GenerationConfig, LoopConfig, TrainConfig
from read_jax.loop.run import ReadRun, Streams, build_probe_suite, read_saved_config

__all__ = ["BanditConfig", "GenerationConfig", "LoopConfig", "ReadRun", "Streams", "TrainConfig", "build_probe_suite",
           "read_saved_config"]
