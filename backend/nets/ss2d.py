"""VMamba-style 2-D selective scan (SS2D) and M³amba's Cross-SS2D.

Tensors inside the blocks are channel-last, (B, H, W, C).

SS2D: LayerNorm -> in-projection to (x, z) -> depthwise conv + SiLU on x -> cross scan of x along four
routes (row-major, column-major, and both reversed) -> per-route input-dependent delta, B, C
projections -> one grouped selective scan over the four routes -> cross merge (each route mapped back to
pixels and summed) -> LayerNorm -> gating by SiLU(z) -> out-projection -> residual (+ a small MLP).

Cross-SS2D: two modality streams, each with its own projections, whose scans swap their input-dependent
B (stream 1 is driven by B computed from stream 2, and vice versa) while sharing the state matrix A
(one A_log parameter).  Stream 1's input u, delta and read-out C stay its own, so what each stream
writes into its state is selected by the other modality's content.  Both streams run in one grouped
scan call.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .scan import selective_scan

K_ROUTES = 4


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4, C, H*W): row-major, column-major, reversed row-major, reversed column-major."""
    b, c, h, w = x.shape
    rows = x.reshape(b, c, h * w)
    cols = x.transpose(2, 3).reshape(b, c, h * w)
    return torch.stack([rows, cols, rows.flip(-1), cols.flip(-1)], dim=1)


def cross_merge(y: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, 4, C, H*W) -> (B, C, H*W) in row-major pixel order: inverse of each route, summed."""
    b, _, c, l = y.shape
    rows = y[:, 0] + y[:, 2].flip(-1)
    cols = y[:, 1] + y[:, 3].flip(-1)
    cols = cols.reshape(b, c, w, h).transpose(2, 3).reshape(b, c, l)
    return rows + cols


class _Stream(nn.Module):
    """The per-modality part of an SS2D: projections, conv, per-route delta/B/C, D, out-norm, out-proj."""

    def __init__(self, dim: int, d_state: int, ssm_ratio: float, d_conv: int = 3,
                 dt_min: float = 1e-3, dt_max: float = 0.1):
        super().__init__()
        d_inner = max(1, int(round(ssm_ratio * dim)))
        self.d_inner = d_inner
        self.d_state = d_state
        self.dt_rank = max(1, math.ceil(dim / 16))
        self.in_proj = nn.Linear(dim, 2 * d_inner, bias=False)
        self.conv = nn.Conv2d(d_inner, d_inner, d_conv, padding=d_conv // 2, groups=d_inner)
        r = self.dt_rank + 2 * d_state
        self.x_proj_weight = nn.Parameter(torch.empty(K_ROUTES, r, d_inner).uniform_(-1, 1) / math.sqrt(d_inner))
        self.dt_proj_weight = nn.Parameter(
            torch.empty(K_ROUTES, d_inner, self.dt_rank).uniform_(-1, 1) * self.dt_rank ** -0.5)
        # delta bias = softplus^-1 of a log-uniform dt in [dt_min, dt_max] (Mamba's initialisation)
        dt = torch.exp(torch.rand(K_ROUTES, d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=1e-4)
        self.dt_proj_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.D = nn.Parameter(torch.ones(K_ROUTES * d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, dim, bias=False)

    def prepare(self, x: torch.Tensor):
        """x (B, H, W, C) -> u (B, 4*d, L), delta (B, 4*d, L), B and C (B, 4, n, L), z (B, H, W, d)."""
        b, h, w, _ = x.shape
        xz = self.in_proj(x)
        xi, z = xz.chunk(2, dim=-1)
        xi = F.silu(self.conv(xi.permute(0, 3, 1, 2).contiguous()))
        xs = cross_scan(xi)  # (B, 4, d, L)
        dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, Bs, Cs = torch.split(dbl, [self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_proj_weight)
        L = h * w
        return (xs.reshape(b, -1, L), dts.reshape(b, -1, L), Bs.contiguous(), Cs.contiguous(), z)

    def finish(self, y: torch.Tensor, z: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """y (B, 4*d, L) from the scan -> (B, H, W, C)."""
        b = y.shape[0]
        y = cross_merge(y.view(b, K_ROUTES, self.d_inner, h * w), h, w)  # (B, d, L)
        y = y.transpose(1, 2).reshape(b, h, w, self.d_inner)
        y = self.out_norm(y) * F.silu(z)
        return self.out_proj(y)


def _a_log_init(d_total: int, d_state: int) -> torch.Tensor:
    return torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_total, 1)


class SS2D(nn.Module):
    """The SS2D mixer (no residual): (B, H, W, C) -> (B, H, W, C)."""

    def __init__(self, dim: int, d_state: int = 8, ssm_ratio: float = 2.0, d_conv: int = 3):
        super().__init__()
        self.stream = _Stream(dim, d_state, ssm_ratio, d_conv)
        self.A_log = nn.Parameter(_a_log_init(K_ROUTES * self.stream.d_inner, d_state))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = x.shape
        s = self.stream
        u, dt, Bs, Cs, z = s.prepare(x)
        y = selective_scan(u, dt, -torch.exp(self.A_log), Bs, Cs, D=s.D,
                           delta_bias=s.dt_proj_bias.reshape(-1), delta_softplus=True)
        return s.finish(y, z, h, w)


class CrossSS2D(nn.Module):
    """Two streams exchanging their input-dependent B, sharing A: (x1, x2) -> (y1, y2), no residual."""

    def __init__(self, dim: int, d_state: int = 8, ssm_ratio: float = 2.0, d_conv: int = 3):
        super().__init__()
        self.s1 = _Stream(dim, d_state, ssm_ratio, d_conv)
        self.s2 = _Stream(dim, d_state, ssm_ratio, d_conv)
        self.A_log = nn.Parameter(_a_log_init(K_ROUTES * self.s1.d_inner, d_state))  # shared

    def forward(self, x1: torch.Tensor, x2: torch.Tensor):
        _, h, w, _ = x1.shape
        u1, dt1, B1, C1, z1 = self.s1.prepare(x1)
        u2, dt2, B2, C2, z2 = self.s2.prepare(x2)
        A = -torch.exp(self.A_log)
        # one grouped scan: channel groups 0..3 are stream 1's routes, 4..7 stream 2's;
        # group j is driven by B[:, j], so stream 1 gets B2 and stream 2 gets B1.
        y = selective_scan(
            torch.cat([u1, u2], 1), torch.cat([dt1, dt2], 1), torch.cat([A, A], 0),
            torch.cat([B2, B1], 1), torch.cat([C1, C2], 1),
            D=torch.cat([self.s1.D, self.s2.D]),
            delta_bias=torch.cat([self.s1.dt_proj_bias.reshape(-1), self.s2.dt_proj_bias.reshape(-1)]),
            delta_softplus=True,
        )
        y1, y2 = y.chunk(2, dim=1)
        return self.s1.finish(y1, z1, h, w), self.s2.finish(y2, z2, h, w)


class Mlp(nn.Module):
    def __init__(self, dim: int, ratio: float):
        super().__init__()
        hidden = max(1, int(dim * ratio))
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class SS2DBlock(nn.Module):
    """x + SS2D(LN(x)) [+ MLP(LN(.))], channel-last."""

    def __init__(self, dim: int, d_state: int = 8, ssm_ratio: float = 2.0, mlp_ratio: float = 2.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mixer = SS2D(dim, d_state, ssm_ratio)
        self.mlp = None
        if mlp_ratio > 0:
            self.norm2 = nn.LayerNorm(dim)
            self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x):
        x = x + self.mixer(self.norm(x))
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x


class CrossSS2DBlock(nn.Module):
    """(x1, x2) -> (x1 + y1, x2 + y2) through Cross-SS2D [+ per-stream MLP], channel-last."""

    def __init__(self, dim: int, d_state: int = 8, ssm_ratio: float = 2.0, mlp_ratio: float = 2.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mixer = CrossSS2D(dim, d_state, ssm_ratio)
        self.mlp1 = self.mlp2 = None
        if mlp_ratio > 0:
            self.mnorm1 = nn.LayerNorm(dim)
            self.mnorm2 = nn.LayerNorm(dim)
            self.mlp1 = Mlp(dim, mlp_ratio)
            self.mlp2 = Mlp(dim, mlp_ratio)

    def forward(self, x1, x2):
        y1, y2 = self.mixer(self.norm1(x1), self.norm2(x2))
        x1, x2 = x1 + y1, x2 + y2
        if self.mlp1 is not None:
            x1 = x1 + self.mlp1(self.mnorm1(x1))
            x2 = x2 + self.mlp2(self.mnorm2(x2))
        return x1, x2
