"""User-facing errors.

Every error a user can cause with bad input derives from `ReadJaxError`; the CLI
prints it as one line and exits non-zero instead of dumping a traceback.
"""


class ReadJaxError(ValueError):
    """Bad input: a config field, a file or a checkpoint key the user supplied."""


class CheckpointFormatError(ReadJaxError):
    """A Hugging Face checkpoint directory that cannot be loaded as asked."""


class NumericalFault(ReadJaxError):
    """A non-finite loss, gradient, probe score or reward: the run stops before checkpointing it."""
