"""Every option of a training run, declared once: the CLI's flags, ``--config`` files, ``config.json``
and the Python API all read this table.

An :class:`Option` has a Python name (``meta_fraction``), a default, a parser for strings (the
command line, YAML/JSON values are parsed when they are strings) and a help text. The trainer's own
options are :data:`TRAIN_OPTIONS`; each method declares its own in ``Method.options`` (see
``noisyseg_ext.methods.base``); :func:`all_options` joins them. The CLI flag is the name with
``-`` for ``_`` (``--meta-fraction``) unless ``flag`` says otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from noisyseg_ext.errors import ConfigError


def parse_bool(text) -> bool:
    """'1', 'true', 'yes', 'on' -> True; '0', 'false', 'no', 'off' -> False (any case)."""
    if isinstance(text, bool):
        return text
    s = str(text).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a boolean (true/false), got {text!r}")


def parse_size(text) -> Optional[tuple[int, ...]]:
    """'128x128' -> (128, 128); '112x112x80' -> (112, 112, 80); '' / 'none' / None -> None.
    A list or tuple of ints (from a YAML/JSON config) is accepted as is."""
    if text is None:
        return None
    if isinstance(text, (list, tuple)):
        parts = [int(v) for v in text]
    else:
        s = str(text).strip().lower()
        if s in ("", "none", "null"):
            return None
        parts = [int(v) for v in s.replace(",", "x").split("x")]
    if not 1 <= len(parts) <= 3 or any(p < 1 for p in parts):
        raise ValueError(f"expected sizes like 128x128 or 112x112x80 (positive ints), got {text!r}")
    return tuple(parts)


def parse_float_list(text) -> tuple[float, ...]:
    """'0.2,0.4' -> (0.2, 0.4); a list is accepted as is."""
    if isinstance(text, (list, tuple)):
        return tuple(float(v) for v in text)
    return tuple(float(v) for v in str(text).split(",") if v.strip())


def parse_int_list(text) -> tuple[int, ...]:
    """'0,1,2' -> (0, 1, 2); a list is accepted as is."""
    if isinstance(text, (list, tuple)):
        return tuple(int(v) for v in text)
    return tuple(int(v) for v in str(text).split(",") if v.strip())


def parse_str_list(text) -> tuple[str, ...]:
    """'a,b' -> ('a', 'b'); a list is accepted as is."""
    if isinstance(text, (list, tuple)):
        return tuple(str(v) for v in text)
    return tuple(v.strip() for v in str(text).split(",") if v.strip())


def parse_json_dict(text) -> dict:
    """A JSON object given as a string ('{"iterations": [3, 8]}'), or a dict as is; '' -> {}."""
    if isinstance(text, dict):
        return dict(text)
    s = str(text).strip()
    if not s:
        return {}
    value = json.loads(s)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {text!r}")
    return value


def optional(parse: Callable) -> Callable:
    """A parser that maps None / '' / 'none' to None and everything else through ``parse``."""
    def parse_optional(text):
        if text is None or (isinstance(text, str) and text.strip().lower() in ("", "none", "null")):
            return None
        return parse(text)
    parse_optional.__name__ = f"optional_{getattr(parse, '__name__', 'value')}"
    return parse_optional


@dataclass(frozen=True)
class Option:
    """One option. ``parse`` turns a string (or a config file's value) into the value; ``choices``
    restricts it; ``flag`` overrides the CLI flag (default ``--`` + name with dashes)."""

    name: str
    default: Any
    help: str
    parse: Callable = str
    choices: Optional[Sequence] = None
    flag: Optional[str] = None
    group: str = "training"

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def convert(self, value, where: str = "") -> Any:
        """Parse and check ``value``; raises ConfigError naming the option (and ``where``)."""
        try:
            out = self.parse(value) if (isinstance(value, str) or self.parse is not str) else value
        except (TypeError, ValueError) as exc:
            src = f" in {where}" if where else ""
            raise ConfigError(f"option {self.cli_flag}{src}: {exc}") from None
        if self.choices is not None and out not in self.choices:
            src = f" in {where}" if where else ""
            raise ConfigError(f"option {self.cli_flag}{src}: {out!r} is not one of {', '.join(map(str, self.choices))}")
        return out


def _ratio(text) -> float:
    r = float(text)
    if not 0.0 <= r <= 1.0:
        raise ValueError(f"the noise ratio must lie in [0, 1], got {r}")
    return r


def _fraction(text) -> float:
    f = float(text)
    if not 0.0 <= f < 1.0:
        raise ValueError(f"a split fraction must lie in [0, 1), got {f}")
    return f


def _positive_int(text) -> int:
    v = int(text)
    if v < 1:
        raise ValueError(f"expected a positive integer, got {v}")
    return v


def _non_negative_int(text) -> int:
    v = int(text)
    if v < 0:
        raise ValueError(f"expected an integer >= 0, got {v}")
    return v


def _positive_float(text) -> float:
    v = float(text)
    if not v > 0:
        raise ValueError(f"expected a positive number, got {v}")
    return v


def _non_negative_float(text) -> float:
    v = float(text)
    if not v >= 0:
        raise ValueError(f"expected a number >= 0, got {v}")
    return v


# The trainer's options (methods add theirs). Names are the Python / config-file keys.
TRAIN_OPTIONS: tuple[Option, ...] = (
    # data
    Option("data", "hc18-sample", "dataset: a folder with images/ and masks/, an nnU-Net raw dataset folder "
           "(imagesTr/, labelsTr/, dataset.json) or 'hc18-sample' (embedded, 64 images)", group="data"),
    Option("size", None, "resize every image to HxW (or HxWxD): images bilinear, masks nearest; required when "
           "image sizes differ (2D)", optional(parse_size), group="data"),
    Option("subject_regex", None, "regular expression whose first group (or whole match) names a file's subject; "
           "files of one subject stay in one split (default: HC18's leading number for HC18, else one subject a file)",
           optional(str), group="data"),
    Option("meta_fraction", 0.1, "fraction of subjects in the small clean meta split (meta-learning methods)",
           _fraction, group="data"),
    Option("val_fraction", 0.1, "fraction of subjects in the validation split (chooses the 'best' checkpoint)",
           _fraction, group="data"),
    Option("test_fraction", 0.2, "fraction of subjects in the test split (reported, never used for selection)",
           _fraction, group="data"),
    Option("splits", None, "a splits.json (from an earlier run) to reuse instead of drawing the split",
           optional(str), group="data"),
    Option("noisy_masks", None, "folder of real noisy training masks (same file names as masks/); masks/ is then "
           "used for evaluation only and --noise is ignored", optional(str), group="data"),
    Option("normalize", "zscore", "per-image intensity normalisation", str, ("zscore", "minmax", "none"), group="data"),
    Option("augment", True, "random flips and a small affine transform of training images", parse_bool, group="data"),
    Option("patch", None, "train on random patches of this size (e.g. 112x112x80); default whole images",
           optional(parse_size), group="data"),
    Option("fg_ratio", 0.33, "fraction of patches centred on a foreground pixel (with --patch)", _fraction, group="data"),
    Option("workers", 0, "DataLoader worker processes for training batches (0: in the main process)",
           _non_negative_int, group="data"),
    # noise
    Option("noise", "dilation", "label-noise protocol applied to the train split: dilation, elastic, erode_dilate, "
           "pick_and_learn or none", str, ("dilation", "elastic", "erode_dilate", "pick_and_learn", "none"),
           group="noise"),
    Option("ratio", 0.6, "fraction of training masks corrupted, in [0, 1]", _ratio, group="noise"),
    Option("noise_params", {}, "protocol parameters as JSON, e.g. '{\"iterations\": [3, 8]}' (see corrupt_labels)",
           parse_json_dict, group="noise"),
    # network
    Option("net", "unet", "network", str, ("unet", "vnet"), group="network"),
    Option("base", 16, "channels of the first level", _positive_int, group="network"),
    Option("depth", None, "resolution levels (default: the network's own, unet 4, vnet 5)", optional(_positive_int),
           group="network"),
    Option("norm", "batch", "normalisation layers", str, ("batch", "instance", "group", "none"), group="network"),
    Option("dropout", 0.0, "dropout probability (unet: after each decoder block; vnet: at the bottom and before "
           "the output, as UA-MT); the mean-teacher methods perturb their teacher with it", _fraction,
           group="network"),
    # method and loss
    Option("method", "baseline", "training method (see `noisyseg train --help` for the list)", str, group="method"),
    Option("loss", "ce", "supervised loss on the training labels", str, ("ce", "ce+dice"), group="method"),
    # optimisation
    Option("steps", 300, "training steps", _positive_int, group="optimisation"),
    Option("batch", 8, "global batch size (split over processes under torchrun)", _positive_int, group="optimisation"),
    Option("optimizer", "adam", "optimiser of the segmentation network", str, ("adam", "sgd"), group="optimisation"),
    Option("lr", 1e-3, "learning rate", _positive_float, group="optimisation"),
    Option("momentum", 0.9, "SGD momentum", _non_negative_float, group="optimisation"),
    Option("weight_decay", 0.0, "weight decay", _non_negative_float, group="optimisation"),
    Option("schedule", "poly", "learning-rate schedule: poly (1 - t/T)^0.9, step (x gamma every --lr-step steps), "
           "cosine or constant", str, ("poly", "step", "cosine", "constant"), group="optimisation"),
    Option("lr_step", 2500, "steps between decays of the 'step' schedule", _positive_int, group="optimisation"),
    Option("lr_gamma", 0.1, "factor of each decay of the 'step' schedule", _positive_float, group="optimisation"),
    Option("amp", "off", "mixed precision: off, bf16 (CPU or CUDA) or fp16 (CUDA, with a GradScaler)", str,
           ("off", "bf16", "fp16"), group="optimisation"),
    Option("clip", 0.0, "clip the gradient norm to this value (0: off)", _non_negative_float, group="optimisation"),
    # evaluation and checkpoints
    Option("eval_every", 100, "evaluate on the validation split every K steps (and at the end)", _positive_int,
           group="evaluation"),
    Option("checkpoint_every", None, "write last.pt every K steps (default: at every evaluation)",
           optional(_positive_int), group="evaluation"),
    Option("eval_model", "auto", "which network to evaluate: student, teacher, or auto (the method's default)", str,
           ("auto", "student", "teacher"), group="evaluation"),
    Option("eval_batch", 8, "images per inference batch (or sliding windows per batch)", _positive_int,
           group="evaluation"),
    Option("overlap", 0.5, "overlap of sliding windows (volumes with --patch)", _fraction, group="evaluation"),
    Option("log_every", 10, "read the loss back and update the bar every K steps", _positive_int, group="evaluation"),
    # run
    Option("seed", 0, "fixes the split, the noise, the data order and the initialisation", int, group="run"),
    Option("out", None, "run folder (default runs/<method>-<noise>-<ratio>-s<seed>)", optional(str), group="run"),
    Option("device", "auto", "cpu, cuda, cuda:K or auto", str, group="run"),
    Option("resume", False, "continue the run in --out from its last checkpoint, exactly", parse_bool, group="run"),
    Option("overwrite", False, "replace a run that --out already holds", parse_bool, group="run"),
    Option("quiet", False, "no progress bar and no table", parse_bool, group="run"),
)

# Options that may differ between a run and its resumption: they do not change what is computed.
RESUME_FREE = frozenset({"resume", "overwrite", "quiet", "workers", "device", "log_every"})


def all_options() -> tuple[Option, ...]:
    """The trainer's options followed by every registered method's, each name once."""
    from noisyseg_ext.methods.registry import METHODS

    seen = {o.name: o for o in TRAIN_OPTIONS}
    out = list(TRAIN_OPTIONS)
    for cls in METHODS.values():
        for o in cls.options:
            if o.name in seen:
                if seen[o.name].default != o.default:
                    raise RuntimeError(f"option {o.name} declared twice with different defaults "
                                       f"({seen[o.name].default!r}, {o.default!r})")
                continue
            seen[o.name] = o
            out.append(o)
    return tuple(out)
