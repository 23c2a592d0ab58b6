"""PNT, INT and PINT (Shi & Wu, "Distilling effective supervision for robust medical image
segmentation with noisy labels", MICCAI 2021): labels the mean teacher is unsure of are replaced by
its mean soft prediction μ.

Per pixel ``L_v = g_v · CE(s_v, y_v) + (1 − g_v) · λ · Σ_c (softmax(s_v)_c − μ_vc)²``, averaged over
the pixels, through the fused :func:`~noisyseg_ext.ops.pint_loss`, with the gate

* PNT (pixel level): ``g_v = a_v = [u_v < H(t)]``;
* INT (image level): ``g_v = a_i``, the image's (in 3D: the slice's, see ``gates.py``) gate: the
  ``--image-keep`` fraction of the batch with the lowest mean uncertainty, or ``U_i < H_img(t)``;
* PINT: ``g_v = a_i · a_v``.

μ, u and U come from the T perturbed passes of the EMA teacher (``passes.py``); H(t) is UA-MT's
threshold ramp. The paper's blend has no weight on the MSE (λ = ``--pint-lambda`` = 1).

Gate warm-up (``--gate-warmup-steps``, default 20 % of ``--steps``): the first steps train with CE on
every label and run no teacher pass, and the EMA starts at the end of the warm-up. Without it a
freshly initialised teacher is unsure of every pixel (u ≈ ln C > H(0) = 0.75 ln C), so PNT's and
PINT's gate closes everywhere and the student only copies the untrained teacher: on the HC18 sample
(U-Net, 60 steps, no warm-up) no pixel was trusted before the last steps and the validation Dice stayed
below 0.04, while with 20 warm-up steps of 100 the uncertainty's AUROC for corrupted pixels reached 0.93.
"""

from __future__ import annotations

import math
from typing import ClassVar, Optional

from torch import Tensor

from noisyseg_ext.errors import ConfigError
from noisyseg_ext.methods.base import TrainContext
from noisyseg_ext.methods.mean_teacher import gates
from noisyseg_ext.methods.mean_teacher import options as mt_options
from noisyseg_ext.methods.mean_teacher import schedules
from noisyseg_ext.methods.mean_teacher.passes import TeacherOutput
from noisyseg_ext.methods.mean_teacher.teacher_method import MeanTeacherMethod
from noisyseg_ext.methods.registry import register_method
from noisyseg_ext.ops import pint_loss


class PintFamily(MeanTeacherMethod):
    """PNT / INT / PINT: ``pixel_level`` and ``image_level`` say which gates the method uses."""

    pixel_level: ClassVar[bool] = True
    image_level: ClassVar[bool] = True

    def __init__(self, ctx: TrainContext):
        super().__init__(ctx)
        if self.config.loss != "ce":
            raise ConfigError(f"method {self.name} trains with pint_loss's cross-entropy on trusted pixels; "
                              f"--loss {self.config.loss} is not supported (use --loss ce)")
        self.image_unit = gates.resolve_image_unit(self.config.image_unit, ctx.dims) if self.image_level else None
        warmup = self.config.gate_warmup_steps
        self.warmup = int(round(0.2 * ctx.max_steps)) if warmup is None else int(warmup)
        # The EMA starts over at the end of the warm-up (γ = 0 at its last step: the teacher is then the
        # warmed-up student), so its "true average" phase (γ = 1 − 1/(k+1) for k < 1/(1 − ema_decay))
        # averages trained students only, not the random initial ones: with ema_decay 0.99 from step 0
        # the teacher of a U-Net on the HC18 sample was at Dice 0.08 after 100 steps and 0.78 after 160
        # while its student was above 0.95 from step 40.
        self.ema_start = max(self.warmup - 1, 0)

    # -- gates' parameters at a step --------------------------------------------------------------

    def pixel_threshold(self, step: int) -> Optional[float]:
        """H(step) for the pixel gate, or None without one (INT)."""
        return self.threshold(step) if self.pixel_level else None

    def image_gate_args(self, step: int) -> tuple[Optional[float], Optional[float]]:
        """(keep ratio, threshold in nats) of the image gate at ``step``: one of them None (both without
        an image gate)."""
        if not self.image_level:
            return None, None
        cfg = self.config
        if cfg.image_threshold is None:
            return cfg.image_keep, None
        return None, schedules.image_threshold(step, self.ramp, self.ctx.num_classes, cfg.image_threshold,
                                               cfg.uncertainty_threshold_start, cfg.uncertainty_threshold_end)

    # -- the step ---------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        x, y = batch["image"], batch["label"]
        H = self.pixel_threshold(step)
        keep, image_threshold = self.image_gate_args(step)
        if step < self.warmup:
            return self._warmup_step(x, y, H, image_threshold)
        teacher = self.teacher_outputs(x).uncertainty  # first: freed before the student's graph exists
        logits = self.ctx.model(x)
        lam = float(self.config.pint_lambda)
        logs = {}
        if self.image_unit == "slice":
            slice_u = gates.slice_uncertainty(teacher.pixel)
            a = gates.unit_gate(slice_u, keep=keep, threshold=image_threshold)
            u = gates.mask_untrusted(teacher.pixel, a)
            out = pint_loss(logits, y, teacher.mean_prob, u, pixel_threshold=math.inf if H is None else H,
                            consistency_weight=lam)
            logs["trusted_images"] = a.float().mean()
        else:
            out = pint_loss(logits, y, teacher.mean_prob, teacher.pixel, pixel_threshold=H,
                            image_keep_ratio=keep, image_threshold=image_threshold,
                            image_uncertainty=teacher.image if self.image_level else None, consistency_weight=lam)
            if self.image_level:
                logs["trusted_images"] = out.image_trusted_fraction.detach()
        loss = out.loss
        logs.update({"loss": loss, "trusted_pixels": out.pixel_trusted_fraction.detach()})
        return self._schedule_logs(logs, H, image_threshold)

    def _warmup_step(self, x: Tensor, y: Tensor, H: Optional[float], image_threshold: Optional[float]) -> dict[str, Tensor]:
        """Before the gates open: CE on every label (``loss_fn`` is the fused weighted_ce, pint_loss's
        CE with every gate open), no teacher passes; the logs have the keys of a gated step (the
        trainer averages each key over all steps)."""
        loss = self.ctx.loss_fn(self.ctx.model(x), y)
        logs = {"loss": loss, "trusted_pixels": self.scalar(1.0, loss)}
        if self.image_level:
            logs["trusted_images"] = self.scalar(1.0, loss)
        return self._schedule_logs(logs, H, image_threshold)

    def _schedule_logs(self, logs: dict[str, Tensor], H: Optional[float],
                       image_threshold: Optional[float]) -> dict[str, Tensor]:
        if H is not None:
            logs["threshold"] = self.scalar(H, logs["loss"])
        if image_threshold is not None:
            logs["image_threshold"] = self.scalar(image_threshold, logs["loss"])
        return logs

    def label_gate(self, teacher: TeacherOutput, step: int) -> tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        res = teacher.uncertainty
        keep, image_threshold = self.image_gate_args(step)
        unit_u = gates.unit_uncertainty(res.pixel, res.image, self.image_unit) if self.image_level else None
        gate, a = gates.label_gate(res.pixel, unit_u, pixel_threshold=self.pixel_threshold(step), keep=keep,
                                   threshold=image_threshold)
        return gate, a, unit_u


@register_method
class PNT(PintFamily):
    """PNT: pixels with a high teacher uncertainty learn from the teacher's mean instead of the label."""

    name = "pnt"
    help = "PNT: pixel-level noise-tolerant training (uncertain pixels learn the EMA teacher's mean)"
    options = mt_options.PNT_OPTIONS
    pixel_level, image_level = True, False


@register_method
class INT(PintFamily):
    """INT: images (3D: slices) with a high mean teacher uncertainty learn from the teacher's mean."""

    name = "int"
    help = "INT: image-level noise-tolerant training (uncertain images / slices learn the EMA teacher's mean)"
    options = mt_options.INT_OPTIONS
    pixel_level, image_level = False, True


@register_method
class PINT(PintFamily):
    """PINT: both gates, g = a_i · a_v."""

    name = "pint"
    help = "PINT: pixel- and image-level noise-tolerant training with an EMA teacher"
    options = mt_options.PINT_OPTIONS
    pixel_level, image_level = True, True
