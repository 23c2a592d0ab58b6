"""What UA-MT, PNT, INT and PINT share: the EMA teacher, its T passes, the ramps, the EMA update
after each optimiser step, the evaluation hooks (diagnostics for ``metrics.csv``, the figure).

Evaluation model: ``--eval-model auto`` evaluates the **student**. UA-MT's code saves and its test
script evaluates the student (``model.state_dict()``), and the baseline has no teacher: the student
is the same network trained another way, while the teacher adds a temporal ensemble on top (often a
little better). ``--eval-model teacher`` evaluates the EMA teacher (BatchNorm on its EMA running
statistics); both are saved in checkpoints.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import ClassVar, NamedTuple, Optional

import torch
from torch import Tensor, nn

from noisyseg_ext.errors import ConfigError
from noisyseg_ext.methods.base import Method, TrainContext
from noisyseg_ext.methods.mean_teacher import schedules
from noisyseg_ext.methods.mean_teacher.ema import EMATeacher
from noisyseg_ext.methods.mean_teacher.passes import (TeacherOutput, TeacherPasses, active_dropout,
                                                      choose_memory_format, choose_precision)
from noisyseg_ext.metrics.detection import auroc, masked_means


class EvaluationView(NamedTuple):
    """The teacher's view of a diagnostic batch: passes, label gate (N, *spatial) bool, unit gate
    ((N,) or (N, D) bool, or None), the unit uncertainties (or None) and the threshold H(t)."""

    teacher: TeacherOutput
    gate: Tensor
    unit_gate: Optional[Tensor]
    unit_uncertainty: Optional[Tensor]
    threshold: float


@contextlib.contextmanager
def private_rng(device: torch.device, seed: int):
    """Runs the block on the global torch RNG (CPU, and ``device``'s when CUDA) seeded with ``seed``,
    then restores the previous states: evaluation-time passes neither depend on nor change the
    training's random stream (so ``--eval-every`` does not change the training)."""
    device = torch.device(device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for i in cuda:
            torch.cuda.default_generators[i].manual_seed(seed)
        yield


class MeanTeacherMethod(Method):
    """Base of the mean-teacher methods: subclasses define :meth:`training_step` and :meth:`label_gate`.

    Attributes:
        teacher: the :class:`EMATeacher` (a submodule: saved in ``method_state`` and moved with the
            method); ``teacher.net`` is the network evaluated as ``teacher``.
        passes: the :class:`TeacherPasses` (T, input noise, stream / batched, precision, layout).
        ramp: length of the threshold and consistency ramps in steps.
        ema_start: the step whose update restarts the EMA's step count (γ = 0 there: the teacher
            becomes a copy of the student); earlier steps do not update the teacher. 0 for UA-MT;
            the last warm-up step for PNT / INT / PINT.
    """

    default_eval_model: ClassVar[str] = "student"
    #: what the gate of the diagnostics means: "trusted" labels (PNT / INT / PINT) or "certain"
    #: pixels under UA-MT's consistency mask
    gate_name: ClassVar[str] = "trusted"

    def __init__(self, ctx: TrainContext):
        super().__init__(ctx)
        cfg = self.config
        if cfg.uncertainty_threshold_start > cfg.uncertainty_threshold_end:
            raise ConfigError(f"--uncertainty-threshold-start {cfg.uncertainty_threshold_start} is above "
                              f"--uncertainty-threshold-end {cfg.uncertainty_threshold_end}: the ramp goes up")
        if ctx.num_classes < 2:
            raise ConfigError(f"method {self.name} needs at least 2 classes (the uncertainty is an entropy over "
                              f"classes); the data has {ctx.num_classes}")
        dtype = choose_precision(cfg.teacher_precision, ctx.device)
        memory_format = choose_memory_format(cfg.teacher_memory_format, ctx.device, ctx.dims, dtype)
        self.teacher = EMATeacher(ctx.net, cfg.ema_decay, memory_format=memory_format)
        self.passes = TeacherPasses(T=cfg.T, noise_std=cfg.teacher_noise_std, noise_clip=cfg.teacher_noise_clip,
                                    mode=cfg.teacher_passes, dtype=dtype, memory_format=memory_format)
        self.ramp = schedules.ramp_length(cfg.ramp_steps, ctx.max_steps)
        self.ema_start = 0
        if cfg.T > 1 and not active_dropout(ctx.net):
            warnings.warn(f"method {self.name}: the network has no dropout, so the {cfg.T} teacher passes differ "
                          "only by their input noise; UA-MT's V-Net uses dropout 0.5 (--dropout)", stacklevel=2)

    # -- schedules --------------------------------------------------------------------------------

    def threshold(self, step: int) -> float:
        """The pixel threshold H(step) in nats."""
        cfg = self.config
        return schedules.pixel_threshold(step, self.ramp, self.ctx.num_classes, cfg.uncertainty_threshold_start,
                                         cfg.uncertainty_threshold_end)

    def teacher_outputs(self, x: Tensor, *, keep_first: bool = False) -> TeacherOutput:
        """The T perturbed passes of the teacher on x (N, C_in, *spatial); see :class:`TeacherPasses`."""
        return self.passes(self.teacher.net, x, keep_first=keep_first)

    @staticmethod
    def scalar(value: float, like: Tensor) -> Tensor:
        """A 0-dim float32 log tensor on ``like``'s device (a fill, no host-to-device copy)."""
        return torch.full((), float(value), dtype=torch.float32, device=like.device)

    # -- the trainer's hooks ----------------------------------------------------------------------

    def after_step(self, step: int) -> None:
        """EMA update of the teacher from the student just stepped, with γ(step − ema_start) (and the
        buffers' broadcast under DDP); nothing before ``ema_start``."""
        object.__setattr__(self, "_view_cache", None)  # the teacher changes: forget the evaluation's passes
        if step < self.ema_start:
            return
        self.teacher.update(self.ctx.net, step - self.ema_start)
        if self.ctx.world_size > 1:
            self.teacher.sync_buffers()

    def eval_models(self) -> dict[str, nn.Module]:
        return {"student": self.ctx.net, "teacher": self.teacher.net}

    # -- evaluation -------------------------------------------------------------------------------

    def label_gate(self, teacher: TeacherOutput, step: int) -> tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """(gate (N, *spatial) bool, unit gate or None, unit uncertainties or None) of the method at
        ``step``: the pixels the method trusts (or, UA-MT, is certain of)."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluation_view(self, batch: dict[str, Tensor], step: int) -> EvaluationView:
        """The passes and gates of ``batch`` at ``step``, on a private RNG seeded by (seed, step), so
        diagnostics and the figure of one evaluation see the same passes and leave training's RNG alone."""
        key = (step, batch["image"].data_ptr(), tuple(batch["image"].shape))
        cached = getattr(self, "_view_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        seed = (int(self.config.seed) * 1_000_003 + int(step)) % (1 << 62)
        with private_rng(batch["image"].device, seed):
            out = self.teacher_outputs(batch["image"])
        gate, unit_gate, unit_u = self.label_gate(out, step)
        view = EvaluationView(out, gate, unit_gate, unit_u, self.threshold(step))
        object.__setattr__(self, "_view_cache", (key, view))
        return view

    @torch.no_grad()
    def diagnostics(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:
        """At an evaluation, on a fixed train batch with noisy ``label`` and ``clean``:

        * ``threshold``: H(step); ``uncertainty_mean``: mean pixel uncertainty;
        * ``uncertainty_auroc``: AUROC of the pixel uncertainty as a detector of corrupted pixels
          (label != clean), 0.5 = chance;
        * ``corrupted_pixels``: their fraction in the batch;
        * ``<g>_pixels``, ``<g>_pixels_corrupted``, ``<g>_pixels_agree``: fraction of the pixels in the
          gate, on the corrupted pixels, on the pixels whose label agrees with the clean one
          (``<g>`` = ``trusted`` for PNT / INT / PINT, ``certain`` for UA-MT's consistency mask);
        * with an image gate (INT / PINT): ``trusted_images`` (images or slices), on those with a
          corrupted pixel and on the others, and ``image_uncertainty_auroc``.
        """
        view = self.evaluation_view(batch, step)
        u = view.teacher.uncertainty.pixel
        corrupted = batch["label"] != batch["clean"]
        g = self.gate_name
        gate = view.gate.float()
        on, off = masked_means(gate, corrupted)
        out = {"threshold": view.threshold, "uncertainty_mean": float(u.mean()),
               "uncertainty_auroc": auroc(u, corrupted), "corrupted_pixels": float(corrupted.float().mean()),
               f"{g}_pixels": float(gate.mean()), f"{g}_pixels_corrupted": on, f"{g}_pixels_agree": off}
        if view.unit_gate is not None:
            unit_corrupted = (corrupted.flatten(1).any(1) if view.unit_gate.dim() == 1
                              else corrupted.flatten(1, -2).any(1))
            a = view.unit_gate.float()
            on, off = masked_means(a, unit_corrupted)
            out.update({"trusted_images": float(a.mean()), "trusted_images_corrupted": on,
                        "trusted_images_agree": off,
                        "image_uncertainty_auroc": auroc(view.unit_uncertainty, unit_corrupted)})
        return out

    def save_figure(self, batch: dict[str, Tensor], step: int, path: str) -> bool:
        """PINT's Fig. 2 for up to 4 images of ``batch``: image, noisy label, clean label, where they
        differ, the teacher's uncertainty, the gate (volumes: the middle slice of the last axis)."""
        from noisyseg_ext.figures.panels import plot_panels

        with torch.no_grad():
            view = self.evaluation_view(batch, step)
        u = view.teacher.uncertainty.pixel
        gate_title = "trusted label" if self.gate_name == "trusted" else "consistency mask"
        rows = []
        for i in range(min(4, batch["image"].shape[0])):
            rows.append([("image", batch["image"][i], "image"), ("noisy label", batch["label"][i], "label"),
                         ("clean label", batch["clean"][i], "label"),
                         ("label != clean", (batch["label"][i] != batch["clean"][i]).float(), "gate"),
                         ("uncertainty", u[i], "uncertainty"), (gate_title, view.gate[i].float(), "gate")])
        plot_panels(rows, path, title=f"{self.name} step {step}: threshold {view.threshold:.3f} nats "
                                      f"(ln C = {math.log(self.ctx.num_classes):.3f})")
        return True
