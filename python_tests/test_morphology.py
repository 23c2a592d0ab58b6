"""noisyseg_ext.dilate / erode against scipy.ndimage, the pure-torch reference and torch max_pool."""

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

import noisyseg_ext
from noisyseg_ext.ops import reference
from noisyseg_ext.ops.morphology import structure_tensor

SHAPES = {2: (3, 23, 31), 3: (2, 11, 13, 9)}
CASES = [("cross", 1, 1), ("cross", 2, 3), ("box", 1, 2), ("box", 3, 1), ("ball", 2, 1), ("ball", 3, 2),
         ("cross", 0, 1)]


def random_masks(shape, density=0.08, grow=2, gen_seed=0):
    """Blobs plus speckle, some touching the border: every case of the border rule shows up."""
    g = torch.Generator().manual_seed(gen_seed)
    seeds = torch.rand(shape, generator=g) < density
    blobs = torch.from_numpy(np.stack([ndi.binary_dilation(s, iterations=grow) for s in seeds.numpy()]))
    speckle = torch.rand(shape, generator=g) < 0.03
    holes = torch.rand(shape, generator=g) < 0.03
    return (blobs | speckle) & ~holes


def random_labels(shape, classes=3, dtype=torch.int64, gen_seed=0):
    out = torch.zeros(shape, dtype=dtype)
    for c in range(1, classes + 1):
        out[random_masks(shape, density=0.04, gen_seed=gen_seed + c)] = c  # later classes overwrite
    return out


def scipy_binary(masks, op, structure, iterations):
    fn = ndi.binary_dilation if op == "dilate" else ndi.binary_erosion
    s = structure.numpy()
    return torch.from_numpy(np.stack([fn(m, s, iterations=iterations) for m in masks.numpy()]))


def scipy_labels(labels, op, structure, iterations):
    """Per-class reference with scipy: dilation = each class dilated alone, foreground keeps its
    label, background takes the largest class reaching it; erosion = each class eroded alone."""
    lab = labels.numpy()
    out = np.zeros_like(lab) if op == "erode" else lab.copy()
    grown = np.zeros_like(lab)
    for c in sorted(int(v) for v in np.unique(lab) if v != 0):
        per = scipy_binary(torch.from_numpy(lab == c), op, structure, iterations).numpy()
        if op == "erode":
            out[per] = c
        else:
            grown[per] = c  # ascending order: the largest class wins
    if op == "dilate":
        out = np.where(lab != 0, lab, grown)
    return torch.from_numpy(out)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("structure,radius,iterations", CASES)
@pytest.mark.parametrize("op", ["dilate", "erode"])
def test_bool_matches_scipy(device, ndim, structure, radius, iterations, op):
    masks = random_masks(SHAPES[ndim], gen_seed=ndim + radius)
    fn = getattr(noisyseg_ext, op)
    out = fn(masks.to(device), radius, structure=structure, iterations=iterations)
    assert out.dtype == torch.bool and out.shape == masks.shape and out.device.type == device.type
    expected = scipy_binary(masks, op, structure_tensor(structure, radius, ndim), iterations)
    assert torch.equal(out.cpu(), expected)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("op", ["dilate", "erode"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_explicit_structure_matches_scipy(device, ndim, op, seed):
    """Random structures: asymmetric, even sizes, without the centre, and an all-True even box."""
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 5, (ndim,), generator=g).tolist()
    structure = torch.rand(sizes, generator=g) < 0.5
    structure.view(-1)[0] = True
    if seed == 2:
        structure = torch.ones(sizes, dtype=torch.bool)
    masks = random_masks(SHAPES[ndim], gen_seed=seed)
    for iterations in (1, 2):
        out = getattr(noisyseg_ext, op)(masks.to(device), structure=structure, iterations=iterations)
        assert torch.equal(out.cpu(), scipy_binary(masks, op, structure, iterations)), (sizes, iterations)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("structure,radius,iterations", [("cross", 1, 2), ("box", 2, 1), ("ball", 2, 1)])
@pytest.mark.parametrize("op", ["dilate", "erode"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int64])
def test_label_maps_match_per_class_scipy(device, ndim, structure, radius, iterations, op, dtype):
    labels = random_labels(SHAPES[ndim], dtype=dtype, gen_seed=10 * ndim)
    out = getattr(noisyseg_ext, op)(labels.to(device), radius, structure=structure, iterations=iterations)
    assert out.dtype == dtype
    expected = scipy_labels(labels, op, structure_tensor(structure, radius, ndim), iterations)
    assert torch.equal(out.cpu(), expected.to(dtype))


def test_label_rule_where_classes_meet():
    """Background between class 1 and class 2 goes to 2 (the larger label); foreground keeps its label."""
    x = torch.tensor([[[1, 0, 2, 0, 0]]], dtype=torch.int64)
    assert noisyseg_ext.dilate(x).tolist() == [[[1, 2, 2, 2, 0]]]
    assert noisyseg_ext.dilate(x, structure="box").tolist() == [[[1, 2, 2, 2, 0]]]
    y = torch.tensor([[[0, 0, 0, 0, 0], [0, 3, 3, 3, 0], [0, 3, 3, 3, 0], [0, 3, 3, 1, 0], [0, 0, 0, 0, 0]]])
    # class 3 erodes to nothing next to the 1; the lone 1 vanishes as well
    assert int(noisyseg_ext.erode(y, structure="box").count_nonzero()) == 0
    assert noisyseg_ext.erode(y)[0, 2].tolist() == [0, 0, 3, 0, 0]


def test_erosion_border_rule_matches_scipy():
    """border_value=0: a full mask loses its outer ring (as scipy does)."""
    full = torch.ones(1, 6, 7, dtype=torch.bool)
    out = noisyseg_ext.erode(full)
    assert not out[0, 0].any() and not out[0, :, 0].any() and out[0, 1:-1, 1:-1].all()
    assert torch.equal(out[0], torch.from_numpy(ndi.binary_erosion(full[0].numpy())))
    # dilation adds nothing from outside: an empty mask stays empty
    assert not noisyseg_ext.dilate(torch.zeros(2, 5, 5, dtype=torch.bool), 3, structure="box").any()


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("op", ["dilate", "erode"])
@pytest.mark.parametrize("labels", [False, True])
def test_kernel_matches_torch_reference(device, ndim, op, labels):
    """The kernels' decompositions against the reference's direct full-structure stencil."""
    x = random_labels(SHAPES[ndim], gen_seed=3) if labels else random_masks(SHAPES[ndim], gen_seed=3)
    for structure, radius, iterations in CASES:
        full = structure_tensor(structure, radius, ndim)
        expected = reference.morphology(x, full, iterations, erode=op == "erode")
        out = getattr(noisyseg_ext, op)(x.to(device), radius, structure=structure, iterations=iterations)
        assert torch.equal(out.cpu(), expected), (structure, radius, iterations)


@pytest.mark.parametrize("ndim", [2, 3])
def test_box_dilation_matches_max_pool(device, ndim):
    masks = random_masks(SHAPES[ndim], gen_seed=5).to(device)
    pool = F.max_pool2d if ndim == 2 else F.max_pool3d
    for r in (1, 2):
        expected = pool(masks[:, None].float(), 2 * r + 1, stride=1, padding=r)[:, 0] > 0
        assert torch.equal(noisyseg_ext.dilate(masks, r, structure="box"), expected)


def test_identity_noncontiguous_and_empty(device):
    masks = random_masks((2, 20, 30)).to(device)
    out = noisyseg_ext.dilate(masks, 0)
    assert torch.equal(out, masks) and out.data_ptr() != masks.data_ptr()
    t = masks.transpose(1, 2)  # non-contiguous
    expected = scipy_binary(t.cpu().contiguous(), "dilate", structure_tensor("cross", 1, 2), 1)
    assert torch.equal(noisyseg_ext.dilate(t).cpu(), expected)
    empty = torch.zeros(0, 5, 5, dtype=torch.int32, device=device)
    assert noisyseg_ext.erode(empty, 2).shape == (0, 5, 5)
    assert noisyseg_ext.dilate(masks).data_ptr() != masks.data_ptr()  # never in place


@pytest.mark.any_cpu_isa
def test_bad_inputs():
    m = torch.zeros(2, 8, 8, dtype=torch.bool)
    with pytest.raises(TypeError, match="float32"):
        noisyseg_ext.dilate(m.float())
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        noisyseg_ext.dilate(m[0])
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        noisyseg_ext.erode(m[None, None])
    with pytest.raises(ValueError, match="radius"):
        noisyseg_ext.dilate(m, -1)
    with pytest.raises(ValueError, match="iterations"):
        noisyseg_ext.erode(m, iterations=-2)
    with pytest.raises(ValueError, match="iterations"):
        noisyseg_ext.erode(m, iterations=0)
    with pytest.raises(TypeError, match="radius"):
        noisyseg_ext.dilate(m, 1.5)
    with pytest.raises(ValueError, match="structure"):
        noisyseg_ext.dilate(m, structure="diamond")
    with pytest.raises(TypeError, match="bool tensor"):
        noisyseg_ext.dilate(m, structure=torch.ones(3, 3))
    with pytest.raises(ValueError, match="spatial dims"):
        noisyseg_ext.dilate(m, structure=torch.ones(3, 3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="True"):
        noisyseg_ext.dilate(m, structure=torch.zeros(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=">= 0"):
        noisyseg_ext.dilate(torch.full((1, 4, 4), -1, dtype=torch.int64))
    with pytest.raises(TypeError, match="Tensor"):
        noisyseg_ext.dilate(np.zeros((1, 4, 4), bool))


@pytest.mark.any_cpu_isa
def test_opcheck(device):
    masks = random_labels((2, 9, 10), dtype=torch.int32).to(device)
    for erode in (False, True):
        torch.library.opcheck(torch.ops.noisyseg.morphology.default,
                              (masks, [0, 0, 0, 0, 0, 1, 0, 1, 0], [1, 2], 2, erode))
        torch.library.opcheck(torch.ops.noisyseg.morphology.default,
                              (masks > 0, [0, 0, -1, 0, 0, 1], [2], 1, erode))


@pytest.mark.any_cpu_isa
def test_torch_compile_fullgraph(device):
    masks = random_masks((2, 17, 19)).to(device)

    def f(m):
        return noisyseg_ext.erode(noisyseg_ext.dilate(m, 2, structure="ball"), 1, structure="box", iterations=2)

    compiled = torch.compile(f, fullgraph=True)
    assert torch.equal(compiled(masks), f(masks))
    labels = random_labels((2, 17, 19), dtype=torch.int64).to(device)
    assert torch.equal(compiled(labels), f(labels))


def test_large_pass_uses_threads_and_matches_scipy():
    """A pass of >= 2^26 element reads takes the OpenMP path of the CPU kernel."""
    g = torch.Generator().manual_seed(9)
    structure = torch.rand(9, 9, generator=g) < 0.5
    structure[0, 0] = structure[0, 4] = True  # rows with gaps: the row decomposition is exercised too
    masks = torch.rand(8, 512, 512, generator=g) < 0.01
    assert int(structure.sum()) * masks.numel() >= 2 ** 26
    for op in ("dilate", "erode"):
        out = getattr(noisyseg_ext, op)(masks if op == "dilate" else ~masks, structure=structure)
        assert torch.equal(out, scipy_binary(masks if op == "dilate" else ~masks, op, structure, 1))


@pytest.mark.any_cpu_isa
def test_fallback_reference_path(monkeypatch):
    """Where no kernel exists for the device, the public functions run the reference."""
    from noisyseg_ext.ops import _kernels

    monkeypatch.setattr(_kernels, "use_kernel", lambda op, device: False)
    labels = random_labels((2, 12, 14))
    for op in ("dilate", "erode"):
        out = getattr(noisyseg_ext, op)(labels, 2, structure="cross", iterations=2)
        assert torch.equal(out, scipy_labels(labels, op, structure_tensor("cross", 2, 2), 2))


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("labels", [False, True])
@pytest.mark.parametrize("one_launch", [False, True], ids=["cpu_plan", "cuda_plan"])
def test_cuda_per_element_math_on_cpu(monkeypatch, ndim, labels, one_launch):
    """The CUDA kernel's per-element function (stencil_at), run by the CPU kernel, against scipy:
    checks the code the GPU runs on a machine without one, with the CPU's decomposed plan
    (row-decomposed planes included) and with CUDA's plan (one direct stencil per iteration)."""
    from noisyseg_ext.ops import morphology

    monkeypatch.setattr(morphology, "_CPU_PER_ELEMENT", True)
    monkeypatch.setattr(morphology, "_ONE_LAUNCH_PER_ITERATION", one_launch)
    x = random_labels(SHAPES[ndim], gen_seed=4) if labels else random_masks(SHAPES[ndim], gen_seed=4)
    for structure, radius, iterations in CASES:
        s = structure_tensor(structure, radius, ndim)
        for op in ("dilate", "erode"):
            out = getattr(noisyseg_ext, op)(x, radius, structure=structure, iterations=iterations)
            expected = scipy_labels(x, op, s, iterations) if labels else scipy_binary(x, op, s, iterations)
            assert torch.equal(out, expected.to(x.dtype)), (structure, radius, iterations, op)


@pytest.mark.any_cpu_isa
def test_cuda_plan_is_one_launch_per_iteration():
    """On CUDA a cross or ball iteration is one stencil (one launch); the box stays separable."""
    from noisyseg_ext.ops.morphology import _plan

    for structure in ("cross", "ball"):
        stencils, repeats = _plan(structure, 3, 2, 3, erode=False, direct=True)
        assert len(stencils) == 1 and repeats == 2
    stencils, repeats = _plan("cross", 3, 2, 3, erode=False, direct=False)
    assert len(stencils) == 1 and repeats == 6  # CPU: radius-1 passes
    stencils, repeats = _plan("box", 3, 2, 3, erode=False, direct=True)
    assert len(stencils) == 3 and repeats == 1
