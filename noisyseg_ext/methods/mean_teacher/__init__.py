"""The mean-teacher family: UA-MT (``--method uamt``), PNT, INT and PINT (``pnt``, ``int``, ``pint``).

Pieces, one job each: ``ema`` (the EMA teacher), ``passes`` (its T perturbed passes: μ, u, U),
``schedules`` (thresholds and weights by step), ``gates`` (image / slice gates), ``teacher_method``
(what the four methods share: EMA update, evaluation diagnostics, figure), ``uamt`` and ``pint`` (the
methods). Algorithms and defaults: ``../shared/METHODS.md`` §5.
"""

from noisyseg_ext.methods.mean_teacher.ema import EMATeacher, ema_decay_at
from noisyseg_ext.methods.mean_teacher.passes import TeacherOutput, TeacherPasses, pass_mode, perturb
from noisyseg_ext.methods.mean_teacher.pint import INT, PINT, PNT, PintFamily
from noisyseg_ext.methods.mean_teacher.teacher_method import MeanTeacherMethod
from noisyseg_ext.methods.mean_teacher.uamt import UAMT, masked_consistency

__all__ = ["EMATeacher", "INT", "MeanTeacherMethod", "PINT", "PNT", "PintFamily", "TeacherOutput", "TeacherPasses",
           "UAMT", "ema_decay_at", "masked_consistency", "pass_mode", "perturb"]
