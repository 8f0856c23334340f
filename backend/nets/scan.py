"""Selective scan (the S6 recurrence of Mamba), one entry point for every device.

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t        (per channel d, per state n)
    y_t = sum_n C_t[n] * h_t[n] + D * u_t
    out = y * silu(z)                                              (when z is given)

`selective_scan` has mamba-ssm's signature and semantics. On CUDA tensors, when `mamba_ssm` imports,
it calls mamba-ssm's fused kernel; otherwise it runs our own scan, written in PyTorch:

* time-major layout, channels innermost, so every per-step operation touches contiguous memory;
* time blocks of K steps sized to stay in cache; only the state entering each block is kept for the
  backward pass, which recomputes the block (memory O(l*b*d + (l/K)*b*d*n) instead of O(l*b*d*n));
* inside a block, when one step is too small to amortise PyTorch's per-op overhead, a two-level
  ("chunked") linear recurrence: chunks of ~sqrt(K) steps are run all at once from a zero state, the
  chunk-to-chunk carry is a short loop over chunk ends, and one fix-up adds the carried state times
  the within-chunk cumulative decay.  Decays are products of factors in (0, 1], so nothing can
  overflow (we never divide by a decay nor exponentiate a positive log-decay sum);
* a hand-written backward (custom autograd.Function): the adjoint of a linear recurrence is the same
  recurrence run backwards in time, so the backward pass reuses the scan primitive instead of letting
  autograd record l small steps.

`selective_scan_reference` is the plain per-time-step loop straight from the equations, kept as the
ground truth for tests.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["selective_scan", "selective_scan_reference", "selective_scan_cpu", "cuda_kernel_available"]

_CUDA_FN = None
_CUDA_TRIED = False


def _cuda_kernel():
    """mamba-ssm's selective_scan_fn, or None when it cannot be imported (imported lazily, once)."""
    global _CUDA_FN, _CUDA_TRIED
    if not _CUDA_TRIED:
        _CUDA_TRIED = True
        try:
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # type: ignore

            _CUDA_FN = selective_scan_fn
        except Exception:  # ImportError, or a broken CUDA extension build
            _CUDA_FN = None
    return _CUDA_FN


def cuda_kernel_available() -> bool:
    return torch.cuda.is_available() and _cuda_kernel() is not None


# --------------------------------------------------------------------------------------------------
# The scan primitive: h_t = a_t * h_{t-1} + x_t over dim 0 of (L, M) tensors, in place on x.
# --------------------------------------------------------------------------------------------------

_SEQUENTIAL_M = 1 << 15  # a per-step slice this large amortises the per-operation overhead on its own
_BLOCK_ELEMS = 1 << 19  # elements of one time-block buffer (K * M): a handful of them stay in cache


def _chunk_len(L: int) -> int:
    """A chunk length near sqrt(L) that divides L when one is close: padding a block costs three extra
    passes over it (copy in, fill, copy out), more than the few extra carry steps of a longer chunk."""
    t0 = max(1, int(math.ceil(math.sqrt(L))))
    for t in range(t0, min(L, 2 * t0) + 1):
        if L % t == 0:
            return t
    return t0


def _block_len(l: int, M: int) -> int:
    """Time steps per block: about _BLOCK_ELEMS / M, rounded down to a square so that it splits into
    chunks without padding (only the sequence's last, shorter block may need it)."""
    K = max(1, min(l, _BLOCK_ELEMS // M))
    if K < l and M < _SEQUENTIAL_M:
        K = math.isqrt(K) ** 2
    return K


def _linear_scan_(a: torch.Tensor, x: torch.Tensor, reverse: bool = False, h0: Optional[torch.Tensor] = None):
    """In-place linear recurrence on x (L, M) with decays a (L, M), both contiguous, no autograd.

    forward : h_t = a_t * h_{t-1} + x_t   (h_{-1} = h0 or 0)
    reverse : h_t = a_t * h_{t+1} + x_t   (h_L = 0)
    Returns x, which now holds h.
    """
    L, M = x.shape
    if h0 is not None:
        if reverse:
            raise ValueError("h0 is only supported for forward scans")
        x[0].addcmul_(a[0], h0.reshape(M))
    T = L if M >= _SEQUENTIAL_M else _chunk_len(L)
    nc = (L + T - 1) // T
    if nc == 1:  # plain sequential loop
        if not reverse:
            for t in range(1, L):
                x[t].addcmul_(a[t], x[t - 1])
        else:
            for t in range(L - 2, -1, -1):
                x[t].addcmul_(a[t], x[t + 1])
        return x
    pad = nc * T - L
    if pad:
        # padding at the end: x = 0, a = 1.  Forward: padded steps come after every real one.
        # Reverse: the padded states stay exactly 0, so they feed nothing into the real steps.
        xp = torch.zeros(nc * T, M, dtype=x.dtype, device=x.device)
        xp[:L] = x
        ap = torch.ones(nc * T, M, dtype=a.dtype, device=a.device)
        ap[:L] = a
    else:
        xp, ap = x, a
    h = xp.view(nc, T, M)
    av = ap.view(nc, T, M)
    # 1) every chunk from a zero state, all chunks at once; P = within-chunk cumulative decay
    # 2) carry the true state across chunk boundaries (short loop over chunks)
    # 3) fix-up: add carried state * cumulative decay
    P = torch.empty_like(h)
    H = torch.empty(nc, M, dtype=x.dtype, device=x.device)
    if not reverse:
        P[:, 0] = av[:, 0]
        for t in range(1, T):
            h[:, t].addcmul_(av[:, t], h[:, t - 1])
            torch.mul(P[:, t - 1], av[:, t], out=P[:, t])
        H[0].zero_()
        for c in range(1, nc):
            torch.addcmul(h[c - 1, T - 1], P[c - 1, T - 1], H[c - 1], out=H[c])
        h[1:].addcmul_(P[1:], H[1:].unsqueeze(1))
    else:
        P[:, T - 1] = av[:, T - 1]
        for t in range(T - 2, -1, -1):
            h[:, t].addcmul_(av[:, t], h[:, t + 1])
            torch.mul(P[:, t + 1], av[:, t], out=P[:, t])
        H[nc - 1].zero_()
        for c in range(nc - 2, -1, -1):
            torch.addcmul(h[c + 1, 0], P[c + 1, 0], H[c + 1], out=H[c])
        h[:-1].addcmul_(P[:-1], H[:-1].unsqueeze(1))
    if pad:
        x.copy_(xp[:L])
    return x


def _read_out(C: torch.Tensor, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = C @ h, contracting the state axis: C (k, b, g, 1, n), h (k, b, g, n, dg) -> (k, b, g, 1, dg).

    matmul runs one tiny GEMM per (step, batch, group). Inference has thousands of 1 x n @ n x dg
    products per block with n = 4 (b = 1, long sequences): there n broadcast multiply-adds are 3-5x
    faster on this CPU (a 676-step block of 16 groups: 489 -> 105 us); with a larger n or fewer
    products (training batches, the benchmark's n = 16) matmul is the faster one."""
    k, b, g, n, _ = h.shape
    if n <= 8 and k * b * g > 512:
        torch.mul(h[:, :, :, :1], C[..., :1], out=out)
        for i in range(1, n):
            out.addcmul_(h[:, :, :, i:i + 1], C[..., i:i + 1])
        return out
    return torch.matmul(C, h, out=out)


# --------------------------------------------------------------------------------------------------
# The core autograd Function: y = scan(u, delta, A, B, C), without D / z / bias / softplus.
# u, delta (b, d, l); A (d, n); B, C (b, g, n, l); returns y (b, d, l) and the last state (b, d, n).
#
# Internally time-major, with the channel axis innermost: (l, b, g, n, dg) where d = g * dg, so the
# broadcasts over n and over dg are both vectorisable and the contractions over n / dg are small
# matmuls.  The sequence is processed in time blocks of K steps whose buffers stay in cache; only the
# state entering each block is kept for the backward pass, which recomputes the block's states
# (as mamba-ssm's kernel does) - memory is O(l * b * d + (l / K) * b * d * n), not O(l * b * d * n).
# --------------------------------------------------------------------------------------------------


class _SelectiveScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C):
        b, d, l = u.shape
        n = A.shape[1]
        g = B.shape[1]
        dg = d // g
        M = b * d * n
        ul = u.permute(2, 0, 1).reshape(l, b, g, 1, dg).contiguous()
        dl = delta.permute(2, 0, 1).reshape(l, b, g, 1, dg).contiguous()
        At = A.reshape(g, dg, n).transpose(1, 2).contiguous()  # (g, n, dg)
        Bl = B.permute(3, 0, 1, 2).unsqueeze(-1).contiguous()  # (l, b, g, n, 1)
        Cl = C.permute(3, 0, 1, 2).unsqueeze(-2).contiguous()  # (l, b, g, 1, n)
        du = dl * ul
        K = _block_len(l, M)
        nb = (l + K - 1) // K
        y = torch.empty(l, b, g, 1, dg, dtype=u.dtype, device=u.device)
        states = torch.empty(nb, b, g, n, dg, dtype=u.dtype, device=u.device)
        a_buf = torch.empty(K, b, g, n, dg, dtype=u.dtype, device=u.device)
        h_buf = torch.empty_like(a_buf)
        hprev = states[0].zero_()
        for k in range(nb):
            s, e = k * K, min(l, (k + 1) * K)
            kk = e - s
            if k > 0:
                states[k].copy_(hprev)
            a = torch.mul(dl[s:e], At, out=a_buf[:kk]).exp_()
            h = torch.mul(du[s:e], Bl[s:e], out=h_buf[:kk])
            _linear_scan_(a.view(kk, M), h.view(kk, M), h0=states[k] if k > 0 else None)
            _read_out(Cl[s:e], h, y[s:e])
            hprev = h[kk - 1]
        last = hprev.permute(0, 1, 3, 2).reshape(b, d, n).clone()
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(ul, dl, At, Bl, Cl, states)
        ctx.shape = (b, d, l, n, g, K)
        return y.view(l, b, d).permute(1, 2, 0), last

    @staticmethod
    def backward(ctx, gy, glast):
        ul, dl, At, Bl, Cl, states = ctx.saved_tensors
        b, d, l, n, g, K = ctx.shape
        dg = d // g
        M = b * d * n
        nb = states.shape[0]
        kw = dict(dtype=ul.dtype, device=ul.device)
        if gy is None:
            gyl = torch.zeros(l, b, g, 1, dg, **kw)
        else:
            gyl = gy.permute(2, 0, 1).reshape(l, b, g, 1, dg).contiguous()
        du = dl * ul
        gu = torch.empty(l, b, g, 1, dg, **kw)
        gdl = torch.empty(l, b, g, 1, dg, **kw)
        gB = torch.empty(l, b, g, n, 1, **kw)
        gC = torch.empty(l, b, g, 1, n, **kw)
        gAt = torch.zeros(g, n, dg, **kw)
        a_buf = torch.empty(K, b, g, n, dg, **kw)
        h_buf = torch.empty_like(a_buf)
        x_buf = torch.empty_like(a_buf)
        lam_buf = torch.empty_like(a_buf)
        ash_buf = torch.empty_like(a_buf)
        # q: what flows into the last adjoint of a block from its right: a_{e} * lam_{e}
        if glast is not None:
            q = glast.reshape(b, g, dg, n).transpose(2, 3).contiguous()
        else:
            q = None
        for k in range(nb - 1, -1, -1):
            s, e = k * K, min(l, (k + 1) * K)
            kk = e - s
            a = torch.mul(dl[s:e], At, out=a_buf[:kk]).exp_()
            x = torch.mul(du[s:e], Bl[s:e], out=x_buf[:kk])
            h = h_buf[:kk]
            h.copy_(x)
            _linear_scan_(a.view(kk, M), h.view(kk, M), h0=states[k] if k > 0 else None)
            # adjoint: lam_t = a_{t+1} * lam_{t+1} + C_t * gy_t
            lam = torch.mul(Cl[s:e].transpose(-1, -2), gyl[s:e], out=lam_buf[:kk])
            if q is not None:
                lam[kk - 1] += q
            ash = ash_buf[:kk]
            if kk > 1:
                ash[:-1].copy_(a[1:])
            ash[kk - 1].zero_()
            _linear_scan_(ash.view(kk, M), lam.view(kk, M), reverse=True)
            q = a[0] * lam[0]
            torch.matmul(gyl[s:e], h.transpose(-1, -2), out=gC[s:e])
            # a_t * h_{t-1} = h_t - x_t: the gradient w.r.t. the log-decay delta_t * A is lam_t * (h_t - x_t)
            w = torch.sub(h, x, out=x).mul_(lam)
            gAt += (w * dl[s:e]).sum((0, 1))
            gdl[s:e] = w.mul_(At).sum(3, keepdim=True)
            lamB = _read_out(Bl[s:e].transpose(-1, -2), lam, gu[s:e])  # (kk, b, g, 1, dg)
            gdl[s:e].addcmul_(lamB, ul[s:e])
            lamB.mul_(dl[s:e])  # gu[s:e] now holds its gradient
            torch.matmul(lam, du[s:e].transpose(-1, -2), out=gB[s:e])
        gA = gAt.transpose(1, 2).reshape(d, n)
        return (
            gu.view(l, b, d).permute(1, 2, 0),
            gdl.view(l, b, d).permute(1, 2, 0),
            gA,
            gB.squeeze(-1).permute(1, 2, 3, 0),
            gC.squeeze(-2).permute(1, 2, 3, 0),
        )


def _prepare_bc(M: torch.Tensor, b: int, d: int, l: int) -> torch.Tensor:
    """B or C as (b, g, n, l): accepts (d, n) constant, (b, n, l) shared, or (b, g, n, l) grouped."""
    if M.dim() == 2:  # time-invariant, per channel: one group per channel
        return M.unsqueeze(0).unsqueeze(-1).expand(b, d, M.shape[1], l)
    if M.dim() == 3:
        return M.unsqueeze(1)
    if M.dim() == 4:
        if d % M.shape[1] != 0:
            raise ValueError(f"d={d} is not a multiple of the {M.shape[1]} groups of B/C")
        return M
    raise ValueError(f"B/C must have 2, 3 or 4 dims, got shape {tuple(M.shape)}")


def _pre(delta, delta_bias, delta_softplus):
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def _post(y, u, D, z, dtype):
    if D is not None:
        y = y + u * D.float()[..., None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype)


def selective_scan_cpu(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False
):
    """Our scan (any device; fast on CPU). Same arguments and result as `selective_scan`."""
    if A.is_complex():
        raise NotImplementedError("complex A is not supported")
    dtype_in = u.dtype
    b, d, l = u.shape
    uf = u.float()
    delta = _pre(delta, delta_bias, delta_softplus)
    g_b = B.shape[1] if B.dim() == 4 else (d if B.dim() == 2 else 1)
    g_c = C.shape[1] if C.dim() == 4 else (d if C.dim() == 2 else 1)
    Bg = _prepare_bc(B.float(), b, d, l)
    Cg = _prepare_bc(C.float(), b, d, l)
    if g_b != g_c:  # bring both to the finer grouping
        g = max(g_b, g_c)
        if g % g_b or g % g_c:
            raise ValueError("B and C groupings are incompatible")
        Bg = Bg.repeat_interleave(g // g_b, dim=1)
        Cg = Cg.repeat_interleave(g // g_c, dim=1)
    y, last = _SelectiveScanFn.apply(uf, delta, A.float(), Bg, Cg)
    out = _post(y, uf, D, z, dtype_in)
    return (out, last) if return_last_state else out


def selective_scan(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False
):
    """Selective scan with mamba-ssm's signature.

    u, delta: (b, d, l); A: (d, n); B, C: (b, n, l) or (b, g, n, l) with d divisible by g (channel
    group j uses B[:, j]), or (d, n) time-invariant; D: (d,); z: (b, d, l); delta_bias: (d,).
    Returns (b, d, l) in u's dtype, and the last state (b, d, n) when return_last_state.
    """
    if u.is_cuda:
        fn = _cuda_kernel()
        if fn is not None:
            return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    return selective_scan_cpu(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


def selective_scan_reference(
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False
):
    """Plain per-time-step loop from the equations (ground truth; slow)."""
    dtype_in = u.dtype
    b, d, l = u.shape
    u = u.float()
    delta = _pre(delta, delta_bias, delta_softplus)
    A = A.float()
    Bg = _prepare_bc(B.float(), b, d, l)
    Cg = _prepare_bc(C.float(), b, d, l)
    # expand the groups to channels: channel c uses group c // (d // g)
    Bd = Bg.repeat_interleave(d // Bg.shape[1], dim=1)  # (b, d, n, l)
    Cd = Cg.repeat_interleave(d // Cg.shape[1], dim=1)
    h = u.new_zeros(b, d, A.shape[1])
    ys = []
    for t in range(l):
        dt = delta[:, :, t, None]  # (b, d, 1)
        h = torch.exp(dt * A) * h + dt * Bd[:, :, :, t] * u[:, :, t, None]
        ys.append((h * Cd[:, :, :, t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    out = _post(y, u, D, z, dtype_in)
    return (out, h) if return_last_state else out
