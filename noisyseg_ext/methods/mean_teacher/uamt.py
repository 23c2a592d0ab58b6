"""UA-MT, the uncertainty-aware mean teacher (Yu et al., MICCAI 2019), as the baseline of MCPM's
table: the supervised loss on the (noisy) labels plus a consistency MSE to the teacher, masked to the
pixels the teacher is certain of.

``L = loss_fn(s, y) + λ(t) · Σ_v m_v Σ_c (softmax(s_v)_c − q_vc)² / (C · Σ_v m_v + 1e-16)``, with
``m_v = [u_v < H(t)]``, ``λ(t) = uamt_consistency · exp(−5 (1 − t/ramp)²)``, q one perturbed teacher
pass (``--uamt-target pass``, as UA-MT's code; here the first of the T passes instead of an extra,
T + 1-th forward) or the mean μ of the T passes (``mean``). The normalisation by C · Σ m is UA-MT's
(``torch.sum(mask*consistency_dist)/(2*torch.sum(mask)+1e-16)`` with C = 2, github yulequan/UA-MT,
``code/train_LA_meanteacher_certainty.py``); ``loss_fn`` is ``--loss`` (UA-MT: 0.5 · (CE + Dice)).

Why not :func:`~noisyseg_ext.ops.pint_loss`: its blend is complementary per pixel (CE where the gate
is open, MSE where it is closed) and normalised by the number of pixels, while UA-MT applies CE on
every pixel and the MSE on the certain ones, normalised by their number. So the supervised part goes
through ``loss_fn`` (the fused ``weighted_ce``) and the masked MSE is written here.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from noisyseg_ext.methods.mean_teacher import options as mt_options
from noisyseg_ext.methods.mean_teacher import schedules
from noisyseg_ext.methods.mean_teacher.passes import TeacherOutput
from noisyseg_ext.methods.mean_teacher.teacher_method import MeanTeacherMethod
from noisyseg_ext.methods.registry import register_method


def masked_consistency(student_logits: Tensor, target_prob: Tensor, mask: Tensor) -> Tensor:
    """UA-MT's masked consistency: ``Σ_v m_v Σ_c (softmax(s_v)_c − q_vc)² / (C · Σ_v m_v + 1e-16)``.

    student_logits (N, C, *spatial) floating (differentiable); target_prob (N, C, *spatial) floating
    (detached); mask (N, *spatial) bool. Returns a 0-dim float32 tensor (0 when the mask is empty).
    """
    if target_prob.shape != student_logits.shape or mask.shape != (student_logits.shape[0], *student_logits.shape[2:]):
        raise ValueError(f"masked_consistency: student_logits {tuple(student_logits.shape)}, target_prob "
                         f"{tuple(target_prob.shape)} and mask {tuple(mask.shape)} do not match")
    p = torch.softmax(student_logits.float(), dim=1)
    dist = (p - target_prob.detach().float()).square().sum(1)
    m = mask.to(dist.dtype)
    return (dist * m).sum() / (student_logits.shape[1] * m.sum() + 1e-16)


@register_method
class UAMT(MeanTeacherMethod):
    """UA-MT: supervised loss plus the uncertainty-masked consistency to the EMA teacher."""

    name = "uamt"
    help = "UA-MT: supervised loss + consistency MSE to an EMA teacher on its certain pixels"
    options = mt_options.UAMT_OPTIONS
    gate_name = "certain"

    def training_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        x, y = batch["image"], batch["label"]
        keep_first = self.config.uamt_target == "pass"
        # The passes run first, so their activations are freed before the student's graph is built.
        teacher = self.teacher_outputs(x, keep_first=keep_first)
        target = teacher.first_prob if keep_first else teacher.uncertainty.mean_prob
        H = self.threshold(step)
        weight = schedules.uamt_weight(step, self.ramp, self.config.uamt_consistency)
        logits = self.ctx.model(x)
        supervised = self.ctx.loss_fn(logits, y)
        mask = teacher.uncertainty.pixel < H
        consistency = masked_consistency(logits, target, mask)
        loss = supervised + weight * consistency
        return {"loss": loss, "supervised": supervised.detach().float(), "consistency": consistency.detach(),
                "consistency_weight": self.scalar(weight, loss), "certain_pixels": mask.float().mean(),
                "threshold": self.scalar(H, loss), "uncertainty": teacher.uncertainty.image.mean()}

    def label_gate(self, teacher: TeacherOutput, step: int) -> tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        return teacher.uncertainty.pixel < self.threshold(step), None, None
