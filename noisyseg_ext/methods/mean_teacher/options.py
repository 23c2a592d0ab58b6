"""The options of the mean-teacher methods (``--method uamt | pnt | int | pint``), declared once.

Each method lists the ones it reads in its ``options`` tuple; an option shared by several methods is
the same :class:`Option` object, so :func:`~noisyseg_ext.training.options.all_options` keeps it once.
Defaults are those of ``../shared/METHODS.md`` §5 and, where it is silent, UA-MT's code
(github yulequan/UA-MT, ``code/train_LA_meanteacher_certainty.py``).
"""

from __future__ import annotations

from noisyseg_ext.training.options import Option, optional
from noisyseg_ext.training.options import _non_negative_float as _non_negative
from noisyseg_ext.training.options import _non_negative_int, _positive_int
from noisyseg_ext.training.options import _positive_float as _positive

GROUP = "mean-teacher methods (uamt, pnt, int, pint)"

PASS_MODES = ("auto", "stream", "batched")
PRECISIONS = ("auto", "float32", "bfloat16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
IMAGE_UNITS = ("auto", "image", "slice")
UAMT_TARGETS = ("pass", "mean")


def _unit_interval(text) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"expected a number in [0, 1], got {v}")
    return v


def _keep_ratio(text) -> float:
    v = float(text)
    if not 0.0 < v <= 1.0:
        raise ValueError(f"expected a fraction in (0, 1], got {v}")
    return v


# -- the teacher and its passes (every method) ----------------------------------------------------

T = Option("T", 8, "perturbed teacher passes per step (the uncertainty is the entropy of their mean softmax)",
           _positive_int, flag="--T", group=GROUP)
EMA_DECAY = Option("ema_decay", 0.99, "largest EMA decay of the teacher: gamma(step) = min(1 - 1/(step+1), "
                   "ema_decay)", _unit_interval, group=GROUP)
# Not "noise_std": --noise is the label-noise protocol; these perturb the teacher's input.
TEACHER_NOISE_STD = Option("teacher_noise_std", 0.1, "standard deviation of the Gaussian added to the teacher's "
                           "input in each pass", _non_negative, group=GROUP)
TEACHER_NOISE_CLIP = Option("teacher_noise_clip", 0.2, "the teacher's input noise is clamped to "
                            "[-clip, clip]", _non_negative, group=GROUP)
TEACHER_PASSES = Option("teacher_passes", "auto", "run the T passes one at a time (stream, into a running sum: "
                        "memory does not grow with T) or as one forward of T*N images (batched); auto: stream on "
                        "the CPU, batched on CUDA for small batches (see mean_teacher/passes.py)", str, PASS_MODES,
                        group=GROUP)
TEACHER_PRECISION = Option("teacher_precision", "auto", "precision of the teacher passes only: auto = bfloat16 "
                           "where the device computes it natively (else float32), float32, or bfloat16",
                           str, PRECISIONS, group=GROUP)
TEACHER_MEMORY_FORMAT = Option("teacher_memory_format", "auto", "memory format of the teacher's copy: auto = "
                               "channels_last on the CPU (faster convolutions; in 3D only for float32 passes), the "
                               "student's on CUDA",
                               str, MEMORY_FORMATS, group=GROUP)
RAMP_STEPS = Option("ramp_steps", None, "length in steps of the threshold and consistency ramps "
                    "exp(-5 (1 - t/ramp)^2) (default: the run's --steps)", optional(_positive_int), group=GROUP)
THRESHOLD_START = Option("uncertainty_threshold_start", 0.75, "pixel-uncertainty threshold at step 0, in units "
                         "of ln C (UA-MT: 0.75)", _positive, group=GROUP)
THRESHOLD_END = Option("uncertainty_threshold_end", 1.0, "pixel-uncertainty threshold at the end of the ramp, "
                       "in units of ln C (UA-MT: 1)", _positive, group=GROUP)

# -- UA-MT ----------------------------------------------------------------------------------------

UAMT_CONSISTENCY = Option("uamt_consistency", 0.1, "UA-MT: largest weight of the masked consistency MSE (reached "
                          "at the end of the ramp)", _non_negative, group=GROUP)
UAMT_TARGET = Option("uamt_target", "pass", "UA-MT: the consistency target: one perturbed teacher pass (pass, as "
                     "UA-MT's code; here the first of the T passes) or their mean (mean)", str, UAMT_TARGETS,
                     group=GROUP)

# -- PNT / INT / PINT -----------------------------------------------------------------------------

PINT_LAMBDA = Option("pint_lambda", 1.0, "PNT / INT / PINT: weight of the MSE to the teacher's mean on "
                     "untrusted pixels (the paper's blend has none: 1)", _non_negative, group=GROUP)
GATE_WARMUP_STEPS = Option("gate_warmup_steps", None, "PNT / INT / PINT: steps at the start that train on every "
                           "label (plain CE, no teacher passes) before the gates open: a freshly initialised "
                           "teacher is unsure of every pixel, and a closed gate would then only copy it "
                           "(default: 20% of --steps)", optional(_non_negative_int), group=GROUP)
IMAGE_KEEP = Option("image_keep", 0.5, "INT / PINT: fraction of the batch's images (slices in 3D) with the lowest "
                    "mean uncertainty whose labels are trusted", _keep_ratio, group=GROUP)
IMAGE_THRESHOLD = Option("image_threshold", None, "INT / PINT: trust the images whose mean uncertainty is below "
                         "this many ln C at the end of the ramp (it follows the pixel threshold's ramp); replaces "
                         "--image-keep when given", optional(_positive), group=GROUP)
IMAGE_UNIT = Option("image_unit", "auto", "INT / PINT: what the image gate ranks: whole images, or slices along "
                    "the last axis (the PINT paper treats each slice of a volume as an image); auto = slice in "
                    "3D, image in 2D", str, IMAGE_UNITS, group=GROUP)

TEACHER_OPTIONS = (T, EMA_DECAY, TEACHER_NOISE_STD, TEACHER_NOISE_CLIP, TEACHER_PASSES, TEACHER_PRECISION,
                   TEACHER_MEMORY_FORMAT, RAMP_STEPS, THRESHOLD_START, THRESHOLD_END)
UAMT_OPTIONS = TEACHER_OPTIONS + (UAMT_CONSISTENCY, UAMT_TARGET)
PNT_OPTIONS = TEACHER_OPTIONS + (PINT_LAMBDA, GATE_WARMUP_STEPS)
INT_OPTIONS = TEACHER_OPTIONS + (PINT_LAMBDA, GATE_WARMUP_STEPS, IMAGE_KEEP, IMAGE_THRESHOLD, IMAGE_UNIT)
PINT_OPTIONS = INT_OPTIONS
