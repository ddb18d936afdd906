"""The paper's findings, measured: experiment suites, their cached runs, and `RESULTS.md`.

- `suites.py`   what each experiment is (the main table, the transfer matrix, the budget sweep, the
                ablations), as lists of cells: one `ExperimentConfig` per task × seed (× budget)
- `runner.py`   runs the cells that are missing, each in a directory keyed by a hash of its config and
                of the code (so results of other code are never mixed in), resumable after a kill
- `stats.py`    mean ± 95 % t-interval, paired t-tests with Holm's correction
- `report.py`   `RESULTS.md` and the figures from the committed result files, every table headed by
                the command that regenerates it and the commit its numbers come from

`read-jax results run SUITE [--small]` runs a suite; `read-jax results` regenerates `RESULTS.md`.
"""
