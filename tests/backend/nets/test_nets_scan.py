import pytest
import torch

import backend.nets.scan as scan_mod
from backend.nets.scan import selective_scan, selective_scan_cpu, selective_scan_reference


def _inputs(b, d, l, n, groups=None, seed=0, bc_const=False):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, d, l, generator=g)
    delta = torch.randn(b, d, l, generator=g) * 0.5
    A = -(torch.rand(d, n, generator=g) * 3 + 0.1)
    if bc_const:
        shape = (d, n)
    else:
        shape = (b, n, l) if groups is None else (b, groups, n, l)
    B = torch.randn(*shape, generator=g)
    C = torch.randn(*shape, generator=g)
    D = torch.randn(d, generator=g)
    z = torch.randn(b, d, l, generator=g)
    bias = torch.randn(d, generator=g) * 0.3
    return [t.requires_grad_() for t in (u, delta, A, B, C, D, z, bias)]


def _run(fn, ts, use_d, use_z, use_bias, softplus, last=False):
    u, delta, A, B, C, D, z, bias = ts
    for t in ts:
        t.grad = None
    if not softplus:  # keep delta (+ bias) positive as in real use, or the recurrence grows without bound
        delta = delta.abs() + 0.05
        bias = bias.abs()
    res = fn(u, delta, A, B, C, D=D if use_d else None, z=z if use_z else None,
             delta_bias=bias if use_bias else None, delta_softplus=softplus, return_last_state=last)
    out, h = res if last else (res, None)
    w = torch.linspace(-1, 1, out.numel()).view_as(out)
    loss = (out * w).sum()
    if h is not None:
        loss = loss + (h * torch.linspace(-1, 1, h.numel()).view_as(h)).sum()
    loss.backward()
    grads = [t.grad.clone() if t.grad is not None else None for t in ts]
    return out.detach(), (h.detach() if h is not None else None), grads


def _compare(ts, **kw):
    o1, h1, g1 = _run(selective_scan_cpu, ts, **kw)
    o2, h2, g2 = _run(selective_scan_reference, ts, **kw)
    assert (o1 - o2).abs().max().item() <= 1e-4
    if h1 is not None:
        assert (h1 - h2).abs().max().item() <= 1e-4
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]
    for name, a, b in zip(names, g1, g2):
        assert (a is None) == (b is None), name
        if a is None:
            continue
        scale = max(1.0, b.abs().max().item())
        err = (a - b).abs().max().item()
        assert err <= 1e-4 * scale, f"grad {name}: {err} (scale {scale})"


FLAGS = [
    dict(use_d=False, use_z=False, use_bias=False, softplus=False),
    dict(use_d=True, use_z=False, use_bias=False, softplus=False),
    dict(use_d=True, use_z=True, use_bias=True, softplus=True),
    dict(use_d=False, use_z=True, use_bias=True, softplus=False),
]


@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("shape", [(2, 8, 37, 4, None), (2, 8, 64, 4, 4), (1, 6, 1, 3, None), (3, 6, 17, 5, 2),
                                   (1, 8, 300, 4, 4)])  # the last: the read-out by multiply-adds (many products)
def test_matches_reference(shape, flags):
    b, d, l, n, g = shape
    _compare(_inputs(b, d, l, n, g), **flags)


@pytest.mark.parametrize("block,seq", [(64, 1 << 15), (64, 8), (200, 1 << 15), (1000, 32)])
def test_matches_reference_all_code_paths(monkeypatch, block, seq):
    """Several time blocks (checkpointed states), and the sequential in-block path."""
    monkeypatch.setattr(scan_mod, "_BLOCK_ELEMS", block)
    monkeypatch.setattr(scan_mod, "_SEQUENTIAL_M", seq)
    _compare(_inputs(2, 8, 45, 4, 2, seed=1), use_d=True, use_z=True, use_bias=True, softplus=True)
    _compare(_inputs(1, 4, 30, 3, None, seed=2), use_d=True, use_z=False, use_bias=False, softplus=True, last=True)


@pytest.mark.parametrize("k,b,g,n,dg", [(300, 1, 4, 4, 6), (8, 2, 1, 16, 5), (40, 2, 8, 8, 3)])
def test_read_out_forms_agree(k, b, g, n, dg):
    """_read_out picks multiply-adds over the state axis or a batched matmul by shape; both are C @ h."""
    gen = torch.Generator().manual_seed(3)
    C, h = torch.randn(k, b, g, 1, n, generator=gen), torch.randn(k, b, g, n, dg, generator=gen)
    out = torch.empty(k, b, g, 1, dg)
    torch.testing.assert_close(scan_mod._read_out(C, h, out), torch.matmul(C, h))
    # the transposed view the backward pass hands it (B of shape (..., n, 1) read as (..., 1, n))
    Bt = torch.randn(k, b, g, n, 1, generator=gen)
    torch.testing.assert_close(scan_mod._read_out(Bt.transpose(-1, -2), h, out), torch.matmul(Bt.transpose(-1, -2), h))


def test_last_state_and_constant_bc():
    _compare(_inputs(2, 6, 25, 3), use_d=True, use_z=True, use_bias=True, softplus=True, last=True)
    _compare(_inputs(2, 6, 25, 3, bc_const=True), use_d=True, use_z=False, use_bias=False, softplus=True)
    # B grouped, C shared
    ts = _inputs(2, 6, 25, 3, groups=3)
    ts[4] = torch.randn(2, 3, 25).requires_grad_()
    _compare(ts, use_d=True, use_z=False, use_bias=True, softplus=True)


def test_long_sequence_and_strong_decay_stay_finite():
    ts = _inputs(1, 4, 700, 4, seed=3)
    with torch.no_grad():
        ts[1].mul_(20)  # softplus(delta) up to ~40 with |A| up to 3: per-step decays of exp(-120)
    _compare(ts, use_d=True, use_z=False, use_bias=False, softplus=True)
    o, _, g = _run(selective_scan_cpu, ts, use_d=True, use_z=False, use_bias=False, softplus=True)
    assert torch.isfinite(o).all() and all(torch.isfinite(x).all() for x in g if x is not None)


def test_cpu_dispatch_never_touches_the_cuda_kernel(monkeypatch):
    def boom():
        raise AssertionError("CUDA kernel looked up for CPU tensors")

    monkeypatch.setattr(scan_mod, "_cuda_kernel", boom)
    u, delta, A, B, C, D, z, bias = _inputs(1, 4, 10, 2)
    out = selective_scan(u, delta, A, B, C, D, z, bias, True)
    assert out.shape == (1, 4, 10)


def test_dtype_preserved():
    u, delta, A, B, C, D, z, bias = [t.detach() for t in _inputs(1, 4, 10, 2)]
    out = selective_scan(u.double(), delta.double(), A.double(), B.double(), C.double(), D.double())
    assert out.dtype == torch.float64


def _has_cuda_mamba():
    if not torch.cuda.is_available():
        return False
    try:
        import mamba_ssm.ops.selective_scan_interface  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _has_cuda_mamba(), reason="needs CUDA and mamba-ssm")
@pytest.mark.parametrize("groups", [None, 4])
def test_against_mamba_ssm_kernel(groups):
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn, selective_scan_ref

    ts = [t.detach().cuda().requires_grad_() for t in _inputs(2, 16, 128, 8, groups)]
    kw = dict(use_d=True, use_z=True, use_bias=True, softplus=True)
    o_k, _, g_k = _run(selective_scan_fn, ts, **kw)
    o_r, _, g_r = _run(selective_scan_ref, ts, **kw)
    o_o, _, g_o = _run(selective_scan_cpu, ts, **kw)  # our scan, on the GPU tensors
    assert (o_k - o_o).abs().max().item() <= 1e-3
    assert (o_r - o_o).abs().max().item() <= 1e-4
    for a, b in zip(g_r, g_o):
        assert (a - b).abs().max().item() <= 1e-4 * max(1.0, a.abs().max().item())
    o_d, _, _ = _run(selective_scan, ts, **kw)  # dispatcher -> kernel
    assert (o_d - o_k).abs().max().item() == 0


def test_blocks_split_into_chunks_without_padding():
    """Full blocks are squares of the chunk length, so only a sequence's last block may be padded."""
    for l, M in [(16384, 1536), (20736, 6144), (5184, 12288), (1000, 7)]:
        K = scan_mod._block_len(l, M)
        assert 1 <= K <= l and K * M <= max(scan_mod._BLOCK_ELEMS, M)
        if K < l:
            assert K % scan_mod._chunk_len(K) == 0
    assert scan_mod._chunk_len(36) == 6 and scan_mod._chunk_len(37) == 7  # 37 is prime: padded chunks
