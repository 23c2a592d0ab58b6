"""The T perturbed teacher passes: mean softmax μ, pixel uncertainty u and image uncertainty U.

Each pass feeds the teacher ``x + clamp(N(0, std²), −clip, clip)`` (UA-MT: std 0.1, clip 0.2) with
its dropout active and its BatchNorm on running statistics: :func:`pass_mode` puts the teacher in
eval mode and only its dropout modules in train mode. (UA-MT's code runs the whole teacher in train
mode, BatchNorm included; see ``ema.py`` for why we do not.) Passes run under ``torch.no_grad``: no
graph, no gradient into the teacher. The noise and the dropout masks draw from the global torch RNG,
whose state the trainer saves and restores, so a resumed run draws the same perturbations.

Two ways to run them, equal in distribution (not bit for bit: the random numbers are drawn in another
order) and in what they compute (BatchNorm on running statistics makes every image independent of
its batch):

* ``stream``: T forwards of the N images, each added into an :class:`UncertaintyAccumulator`: memory
  of one forward plus the running sums, whatever T;
* ``batched``: one forward of the T·N images (the input repeated T times), then the stacked
  :func:`mc_uncertainty`: fewer, larger kernels, T times the activations.

``auto`` (:func:`choose_pass_mode`), from ``benchmarks/test_bench_mean_teacher_step.py`` on the
2-core CPU (U-Net base 16 depth 4, 8 x 1 x 112 x 160, T = 8, one thread, minimum of 5 interleaved
rounds; the plain training step 0.40 s):

=================  =========  ==========
passes (T = 8)     stream     batched
=================  =========  ==========
float32 NCHW       2.74       7.19       (x the plain step)
float32 NHWC       1.83       4.29
bfloat16 NCHW      1.76       3.55
bfloat16 NHWC      1.13       1.96
=================  =========  ==========

and a batched float32 step peaked at 1.88x the plain step's memory (394 against 210 MiB; bfloat16
hid under it at T = 8, 1.58x at T = 16), the streamed ones at 1.00x. So: ``stream`` on the CPU. On
CUDA ``batched`` when both (a) the T·N batch has at most :data:`BATCHED_VOXELS` voxels (small
steps are bound by kernel launches there: one forward of T·N images saves T − 1 forwards'
launches; above it kernels fill the GPU and batching gains little) and (b) T × the passes' element
size is at most :data:`BATCHED_PASS_BYTES` (the batched activations grow as T × element size, 0.23x
the plain step per float32 pass in the measurement above: T <= 4 in float32, T <= 8 in bfloat16
keeps the step within the issue's 1.3x memory goal). Else ``stream``. The CUDA part is not measured
yet (no GPU in this session); ``--teacher-passes`` overrides it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, NamedTuple, Optional

import torch
from torch import Tensor, nn

from noisyseg_ext.ops import McUncertainty, UncertaintyAccumulator, mc_uncertainty

#: Largest T·N·V (voxels of all passes together) for which ``auto`` batches the passes on CUDA:
#: 8 passes of 8 images of 112 x 160 (1.1 M) batch; 8 passes of 4 patches of 112 x 112 x 80 (32 M) stream.
BATCHED_VOXELS = 1 << 22
#: Largest T x (bytes of the passes' element) for which ``auto`` batches on CUDA (memory, see above).
BATCHED_PASS_BYTES = 16


@contextlib.contextmanager
def pass_mode(net: nn.Module) -> Iterator[nn.Module]:
    """Puts ``net`` in eval mode with its dropout modules (``nn.Dropout*``) in train mode for the
    teacher passes; restores every module's own mode afterwards."""
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    for m in net.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.train()
    try:
        yield net
    finally:
        for m, mode in modes:
            m.training = mode


def active_dropout(net: nn.Module) -> bool:
    """Whether ``net`` has a dropout module with a probability > 0 (the passes' second perturbation)."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in net.modules())


def perturb(x: Tensor, std: float, clip: float) -> Tensor:
    """``x + clamp(N(0, std²), −clip, clip)`` (a new tensor of x's shape, dtype and layout); x itself
    when std or clip is 0 (no random numbers drawn)."""
    if std == 0 or clip == 0:
        return x
    return x + torch.clamp(torch.randn_like(x) * std, -clip, clip)


def choose_pass_mode(requested: str, device: torch.device, T: int, n: int, voxels: int, element_size: int = 4) -> str:
    """``stream`` or ``batched`` for ``--teacher-passes requested`` (``auto`` resolved by the rule in
    the module docstring) on ``device``, for T passes of n images of ``voxels`` voxels each computed
    in a dtype of ``element_size`` bytes."""
    if requested in ("stream", "batched"):
        return requested
    if requested != "auto":
        raise ValueError(f"choose_pass_mode: expected auto, stream or batched; got {requested!r}")
    if torch.device(device).type != "cuda":
        return "stream"
    fits = T * n * voxels <= BATCHED_VOXELS and T * element_size <= BATCHED_PASS_BYTES
    return "batched" if fits else "stream"


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions natively (CUDA: Ampere or newer; CPU: oneDNN's
    bfloat16 support, e.g. AVX512-BF16 or AMX)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def choose_precision(requested: str, device: torch.device) -> torch.dtype:
    """The teacher passes' compute dtype for ``--teacher-precision requested``: ``auto`` gives
    bfloat16 where :func:`native_bfloat16`, else float32. On the 2-core CPU (AVX512-BF16) bfloat16
    passes were 1.6x faster (module docstring) and, on a U-Net trained 60 steps on the HC18 sample,
    changed the gate ``u < H`` of 0.06 to 0.08 % of the pixels (H = 0.75 to 0.95 ln 2; mean |du|
    0.0013 nats), a tenth of the 0.5 to 0.8 % that another draw of the 8 passes' perturbations
    changes (mean |du| 0.022); the ranking of the image uncertainties was unchanged."""
    if requested == "float32":
        return torch.float32
    if requested == "bfloat16":
        return torch.bfloat16
    if requested != "auto":
        raise ValueError(f"choose_precision: expected auto, float32 or bfloat16; got {requested!r}")
    return torch.bfloat16 if native_bfloat16(device) else torch.float32


def choose_memory_format(requested: str, device: torch.device, dims: int,
                         dtype: torch.dtype = torch.float32) -> Optional[torch.memory_format]:
    """The teacher copy's memory format for ``--teacher-memory-format requested``. ``auto``, from the
    passes' timings on the 2-core CPU (module docstring and below): channels_last in 2D (1.5x faster
    in float32, 1.6x in bfloat16); in 3D channels_last_3d for float32 passes (1.16x) but the
    contiguous layout for bfloat16 ones, where channels_last_3d was 1.6x slower (V-Net base 16 depth
    4, 2 x 1 x 48 x 48 x 32, T = 8: 1.72 / 2.00 plain steps in float32, 1.90 / 1.18 in bfloat16);
    None (the student's layout) on other devices (not measured)."""
    cl = torch.channels_last if dims == 2 else torch.channels_last_3d
    if requested == "channels_last":
        return cl
    if requested == "contiguous":
        return torch.contiguous_format
    if requested != "auto":
        raise ValueError(f"choose_memory_format: expected auto, channels_last or contiguous; got {requested!r}")
    if torch.device(device).type != "cpu":
        return None
    if dims == 3 and dtype == torch.bfloat16:
        return torch.contiguous_format
    return cl


class TeacherOutput(NamedTuple):
    """What the passes give: ``uncertainty`` = McUncertainty(mean_prob (N, C, *spatial), pixel
    (N, *spatial), image (N,)), float32; ``first_prob`` = softmax of the first pass (N, C, *spatial)
    float32 when asked for (UA-MT's consistency target), else None; ``mode`` = stream / batched."""

    uncertainty: McUncertainty
    first_prob: Optional[Tensor]
    mode: str


@dataclass(frozen=True)
class TeacherPasses:
    """T perturbed passes of a teacher network.

    Attributes:
        T: number of passes (>= 1).
        noise_std, noise_clip: the input noise (0 for none).
        mode: ``auto``, ``stream`` or ``batched`` (:func:`choose_pass_mode` per call).
        dtype: float32, or bfloat16 (the passes run under bfloat16 autocast).
        memory_format: layout the input is given in (the teacher's), or None to keep x's.
    """

    T: int
    noise_std: float = 0.1
    noise_clip: float = 0.2
    mode: str = "auto"
    dtype: torch.dtype = torch.float32
    memory_format: Optional[torch.memory_format] = None

    def __post_init__(self):
        if self.T < 1:
            raise ValueError(f"TeacherPasses: T must be >= 1; got {self.T}")
        if self.dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"TeacherPasses: dtype must be float32 or bfloat16; got {self.dtype}")

    def resolved_mode(self, x: Tensor) -> str:
        """The mode a call with input x uses."""
        return choose_pass_mode(self.mode, x.device, self.T, x.shape[0], x[0, 0].numel(), self.dtype.itemsize)

    def _autocast(self, device: torch.device):
        # Overrides the step's autocast (--amp): float32 passes run with autocast off.
        if self.dtype == torch.float32:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=self.dtype)

    @torch.no_grad()
    def __call__(self, teacher: nn.Module, x: Tensor, *, keep_first: bool = False) -> TeacherOutput:
        """Runs the passes of ``teacher`` (in :func:`pass_mode`) on ``x`` (N, C_in, *spatial) float.

        Returns TeacherOutput (float32 tensors whatever the passes' dtype; no graph)."""
        if x.dim() < 3:
            raise ValueError(f"TeacherPasses: x must be (N, C_in, *spatial); got shape {tuple(x.shape)}")
        mode = self.resolved_mode(x)
        x = x.detach()
        if self.memory_format is not None:
            x = x.contiguous(memory_format=self.memory_format)
        first = None
        with pass_mode(teacher), self._autocast(x.device):
            if mode == "stream":
                acc = UncertaintyAccumulator()
                for t in range(self.T):
                    logits = teacher(perturb(x, self.noise_std, self.noise_clip))
                    if t == 0 and keep_first:
                        first = torch.softmax(logits.float(), dim=1)
                    acc.add(logits)
                    del logits  # free this pass's output before the next forward
                result = acc.result()
            else:
                n = x.shape[0]
                xs = x.repeat(self.T, *([1] * (x.dim() - 1)))  # passes outermost: (T·N, C_in, *spatial)
                if self.memory_format is not None:
                    xs = xs.contiguous(memory_format=self.memory_format)
                logits = teacher(perturb(xs, self.noise_std, self.noise_clip))
                logits = logits.reshape(self.T, n, *logits.shape[1:])
                if keep_first:
                    first = torch.softmax(logits[0].float(), dim=1)
                result = mc_uncertainty(logits)
        return TeacherOutput(result, first, mode)
