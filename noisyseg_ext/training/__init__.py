"""Training: the Trainer, its configuration, evaluation, checkpoints, run folders, comparison grids.

``Trainer`` and ``evaluate`` are imported lazily (``noisyseg_ext.methods`` imports the option table
from here, and the trainer imports the methods)."""

from noisyseg_ext.training.config import Config, make_config
from noisyseg_ext.training.options import Option

__all__ = ["Config", "Option", "Trainer", "evaluate", "make_config"]


def __getattr__(name):
    if name == "Trainer":
        from noisyseg_ext.training.trainer import Trainer

        return Trainer
    if name == "evaluate":
        from noisyseg_ext.training.evaluation import evaluate

        return evaluate
    raise AttributeError(name)
