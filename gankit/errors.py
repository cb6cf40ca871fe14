"""User-facing errors.

Anything a user can get wrong (a preset name, an override key, a data path, a checkpoint file) raises a
subclass of ``GankitError`` with a message that names the problem and the valid choices. The CLI turns these
into a one-paragraph message and exit code 2; the Python API lets them propagate.
"""


class GankitError(Exception):
    """A mistake in the user's input: bad config, missing data, unreadable checkpoint."""


class ConfigError(GankitError):
    """Unknown preset or key, wrong type, a value an architecture cannot make."""


class DataError(GankitError):
    """Missing or unreadable data, unknown dataset name, wrong layout."""


class CheckpointError(GankitError):
    """A checkpoint that cannot be read, was not written by gankit, or contains pickled code."""


class TrainingDiverged(GankitError):
    """A non-finite loss stopped the run."""


class TrainingInterrupted(GankitError):
    """Ctrl-C (SIGINT) or SIGTERM stopped the run after a step; its checkpoint was saved there."""

    def __init__(self, message: str, run_dir=None, checkpoint=None):
        super().__init__(message)
        self.run_dir, self.checkpoint = run_dir, checkpoint
