"""Distillation engine: masked KD losses, one jitted sharded train step, token accounting.

```python
from read_jax.distill import (Distiller, TokenExample, LossConfig, OptimizerConfig, TokenBudget,
                              make_batches)

budget = TokenBudget(limit=20_000_000, accounting="artifact")        # or "paper"
distiller = Distiller(student, teacher=None,                          # teacher only for full-vocab KD
                      loss_config=LossConfig(ce=1.0),                 # ReAD default: SFT on teacher text
                      optimizer_config=OptimizerConfig(learning_rate=1e-4),
                      mesh=mesh)                                      # ('data', 'fsdp', 'tp')
examples = [TokenExample(prompt_ids, answer_ids) for prompt_ids, answer_ids in teacher_data]
batches, dropped = make_batches(examples, rows=8, max_length=512)
for batch in batches:
    n = budget.fit_count([(len(examples[i].prompt), len(examples[i].response)) for i in batch.indices])
    if n < len(batch.indices):     # does not fit entirely: rebuild from the examples that do
        break
    metrics = distiller.step(batch.arrays)     # {'loss', 'ce', 'tokens/label', ...}
    budget.charge_batch(batch)
state = {"params": distiller.params, "opt_state": distiller.opt_state, "budget": budget.state_dict()}
```
"""

from read_jax.distill.batching import Batch, TokenExample, bucket_length, collate, make_batches
from read_jax.distill.budget import ACCOUNTINGS, BudgetExceeded, TokenBudget
from read_jax.distill.chunked import HiddenTeacher, kd_loss_from_hidden
from read_jax.distill.losses import IGNORE_INDEX, LossConfig, check_vocab, kd_loss, token_mask
from read_jax.distill.train_step import (
    Distiller, OptimizerConfig, add_metrics, make_loss_fn, make_optimizer, make_train_step, optimizer_step,
    summarize,
)

__all__ = [
    "ACCOUNTINGS", "Batch", "BudgetExceeded", "Distiller", "HiddenTeacher", "TokenExample", "IGNORE_INDEX", "LossConfig",
    "OptimizerConfig", "TokenBudget", "add_metrics", "bucket_length", "check_vocab", "collate", "kd_loss",
    "kd_loss_from_hidden", "make_batches", "make_loss_fn", "make_optimizer", "make_train_step", "optimizer_step",
    "summarize", "token_mask",
]
