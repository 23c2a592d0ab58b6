"""Direct calls: run an op's implementation without its torch.library custom op, in plain eager mode.

Every op is a ``torch.library.custom_op`` with fake and autograd registrations: that is what
torch.compile, torch.export, FakeTensor, functorch and ``opcheck`` see, and it stays the only path
there. In plain eager mode, though, the custom op's Python dispatch (argument defaults, the
redispatch through the autograd wrapper, the dynamo guards around it) costs as much host time as
the rest of a step: weighted_ce forward + backward of a tiny CPU tensor took 250 us through the
custom ops and 135 us calling the same implementation directly (eager PyTorch: 72 us). On a GPU
that host time *is* the step for mid-sized inputs. So the public functions call the implementation
directly when nothing is tracing (:func:`enabled_for`), through :func:`apply` for ops with a
gradient: an autograd.Function that reuses the op's own setup_context and backward.

``set_direct_calls(False)`` (or ``NOISYSEG_DIRECT_CALLS=0`` in the environment) sends every call
through the custom ops, e.g. to compare the two paths.
"""

from __future__ import annotations

import os
from typing import Callable

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

_ENABLED = os.environ.get("NOISYSEG_DIRECT_CALLS", "1") != "0"
_PLAIN = (torch.Tensor, torch.nn.Parameter)
_functorch_active = getattr(torch._C, "_are_functorch_transforms_active", lambda: False)


def set_direct_calls(enabled: bool) -> bool:
    """Turn direct calls on or off for the whole process; returns the previous setting."""
    global _ENABLED
    previous, _ENABLED = _ENABLED, bool(enabled)
    return previous


def enabled_for(*tensors) -> bool:
    """True when the ops may skip their custom op for these inputs: direct calls on, no
    torch.compile / export / torch.jit.trace tracing, no functorch transform, no dispatch mode
    (FakeTensorMode, make_fx, FlopCounterMode, ...), and only plain tensors (no subclass such as
    FakeTensor or DTensor). Anything else takes the custom op, which every such mechanism
    understands."""
    if not _ENABLED or torch.compiler.is_compiling() or torch.jit.is_tracing() or _functorch_active():
        return False
    if _get_current_dispatch_mode() is not None:
        return False
    return all(t is None or type(t) in _PLAIN for t in tensors)


def pick(impl: Callable, op: Callable, *tensors) -> Callable:
    """``impl`` (the custom op's implementation, for an op without a gradient; see
    :func:`pick_with_grad` for the others) when
    :func:`enabled_for` the tensors, else ``op`` (its ``torch.ops.noisyseg`` packet)."""
    return impl if enabled_for(*tensors) else op


class _Function(torch.autograd.Function):
    """forward(*args, spec): spec = (impl, setup_context, backward) of a custom op."""

    @staticmethod
    def forward(ctx, *args):
        *args, spec = args
        impl, setup_context, backward = spec
        # Unused outputs' gradients arrive as None, not as materialised zeros (the formulas treat
        # None as 0; PINT's d loss / d s output alone would be a 2 MB fill a step otherwise).
        ctx.set_materialize_grads(False)
        out = impl(*args)
        setup_context(ctx, tuple(args), out)
        ctx.op_backward = backward
        return out

    @staticmethod
    def backward(ctx, *grads):
        return (*ctx.op_backward(ctx, *grads), None)


def apply(impl: Callable, setup_context: Callable, backward: Callable, *args):
    """``impl(*args)`` with the autograd formula the custom op registers (setup_context, backward:
    the functions given to ``register_autograd``), without the custom op's dispatch."""
    return _Function.apply(*args, (impl, setup_context, backward))


def pick_with_grad(impl: Callable, setup_context: Callable, backward: Callable, op: Callable,
                   *tensors) -> Callable:
    """:func:`pick` for an op with a gradient: when :func:`enabled_for` the tensors (which must
    include every input that can take a gradient), ``impl`` itself if no gradient can be asked for
    (grad mode off, or no tensor requires one: evaluation loops skip the autograd.Function; a
    tiny pint_loss call under no_grad took 45-55 instead of 72-86 us on the CPU), else ``impl`` run
    through :func:`apply` with the op's autograd formula; otherwise ``op``."""
    if enabled_for(*tensors):
        if not torch.is_grad_enabled() or not any(t is not None and t.requires_grad for t in tensors):
            return impl
        return lambda *args: apply(impl, setup_context, backward, *args)
    return op
