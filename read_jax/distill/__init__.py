"""Distillation engine: masked KD losses, one jitted sharded train step, token accounting."""
