"""BDGF-style classifier: a DDPM denoiser over all modalities, pretrained on the unlabelled scene with
adaptive modality masking, whose features guide CNN, Mamba (SS2D) and Transformer branches; the branches
are tied together by mutual learning.

Denoiser (small UNet, x0-parameterised DDPM, cosine or linear beta schedule, ~100 steps, sinusoidal
timestep embedding).  Input: the concatenated modalities at step t, the masked modalities zeroed, plus
one presence channel per modality.

Pretraining (`pretrain_step`): every modality of every sample is masked with probability p_k; the
network must denoise the visible modalities and reconstruct the masked ones from the others (loss on
all, masked ones included).  p_k grows for the modality whose running denoising loss (EMA kept in the
`running_loss` buffer) is the smallest, so the easiest modality - usually the HSI - is hidden most
often and cannot carry the representation alone.

Classification: the denoiser sees the clean scene at a fixed small step (`feature_t`; noise is drawn in
training only, so eval is deterministic) and its decoder (full resolution) and bottleneck (half
resolution) features guide each branch through
  * feature fusion: concat(stem features, diffusion features) -> 1x1 conv at the branch input,
  * group channel attention: channel gates computed group-wise from locally pooled branch + diffusion
    features,
  * cross-attention: branch features (queries) attend to diffusion features (keys/values) in windows.
Each branch has its own 1x1 head; the output is the fused head on the concatenated branch features.
In training mode `extra_losses()` returns the mutual-learning terms of the last forward: KL of each
branch's prediction towards the (detached) fused one, an entropy alignment, and a cosine feature
alignment of each branch to the (detached) mean branch feature.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import ChannelNorm, checked_modality_bands
from .ss2d import SS2DBlock

# Context a tile needs around its core. The SS2D branch scans the whole tile, so no halo makes tiled
# output exactly equal to whole-image output; 32 px keeps the (decaying) influence of the tile edge small.
HALO = 32

DEFAULT_PARAMS = {
    "dim": 32,  # branch width
    "diff_dim": 32,  # denoiser width (its bottleneck is 2x)
    "timesteps": 100,
    "schedule": "cosine",  # or "linear"
    "feature_t": 5,  # the fixed small step at which features are taken for classification
    "mask_p_min": 0.05,
    "mask_p_max": 0.5,
    "mask_temperature": 0.25,
    "loss_ema": 0.95,
    "d_state": 8,
    "ssm_ratio": 1.5,
    "heads": 2,
    "window": 8,  # attention window (on the half-resolution grid)
    "groups": 4,  # group channel attention groups
    "mutual_weight": 0.5,
    "entropy_weight": 0.1,
    "feature_weight": 0.1,
    "kl_temperature": 1.0,
    "freeze_diffusion": False,  # True: the pretrained denoiser is a fixed feature extractor
    # > 0: a per-pixel spectral path (nets.spectral.SpectralHead) adds its logits to the fused head's;
    # 0 (every package made before issue 20) builds the network exactly as before.
    "spectral_dim": 0,
    "spectral_conv1d": 0,
}




def beta_schedule(kind: str, T: int) -> torch.Tensor:
    if kind == "linear":
        scale = 1000.0 / T
        return torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=torch.float64).float()
    if kind == "cosine":
        s = 0.008
        x = torch.linspace(0, T, T + 1, dtype=torch.float64)
        ac = torch.cos(((x / T) + s) / (1 + s) * math.pi / 2) ** 2
        ac = ac / ac[0]
        return (1 - ac[1:] / ac[:-1]).clamp(max=0.999).float()
    raise ValueError(f"unknown beta schedule {kind!r} (use 'cosine' or 'linear')")


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, tdim: int):
        super().__init__()
        self.n1, self.c1 = ChannelNorm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(tdim, cout)
        self.n2, self.c2 = ChannelNorm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.c1(F.silu(self.n1(x))) + self.t(temb)[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


class Denoiser(nn.Module):
    """x0-predicting UNet-lite. Input (B, C + n_mod, H, W) with H, W even."""

    def __init__(self, channels: int, n_mod: int, c: int):
        super().__init__()
        self.c = c
        self.temb = nn.Sequential(nn.Linear(c, 2 * c), nn.SiLU(), nn.Linear(2 * c, 2 * c))
        self.inp = nn.Conv2d(channels + n_mod, c, 3, padding=1)
        self.enc1 = ResBlock(c, c, 2 * c)
        self.down = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.enc2 = ResBlock(2 * c, 2 * c, 2 * c)
        self.merge = nn.Conv2d(3 * c, c, 1)
        self.dec1 = ResBlock(c, c, 2 * c)
        self.out = nn.Sequential(ChannelNorm(c), nn.SiLU(), nn.Conv2d(c, channels, 3, padding=1))

    def features(self, x, t):
        temb = self.temb(timestep_embedding(t, self.c))
        e1 = self.enc1(self.inp(x), temb)
        e2 = self.enc2(self.down(e1), temb)
        up = F.interpolate(e2, size=e1.shape[-2:], mode="bilinear", align_corners=False)
        d1 = self.dec1(self.merge(torch.cat([e1, up], 1)), temb)
        return d1, e2

    def forward(self, x, t):
        d1, _ = self.features(x, t)
        return self.out(d1)


def _windows(x: torch.Tensor, win: int):
    """(B, C, h, w) -> (B * nW, win*win, C), padded to multiples of win; returns the padded size too."""
    b, c, h, w = x.shape
    ph, pw = (-h) % win, (-w) % win
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    H, W = h + ph, w + pw
    x = x.view(b, c, H // win, win, W // win, win).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(-1, win * win, c), (H, W)


def _unwindows(x: torch.Tensor, b: int, size, hw, win: int):
    H, W = size
    c = x.shape[-1]
    x = x.view(b, H // win, W // win, win, win, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, H, W)
    return x[:, :, : hw[0], : hw[1]]


class WindowAttention(nn.Module):
    """Multi-head attention within win x win windows: queries from q_src, keys/values from kv_src."""

    def __init__(self, cq: int, ckv: int, heads: int, win: int):
        super().__init__()
        self.heads, self.win = heads, win
        d = cq
        self.nq, self.nkv = nn.LayerNorm(cq), nn.LayerNorm(ckv)
        self.q = nn.Linear(cq, d)
        self.kv = nn.Linear(ckv, 2 * d)
        self.o = nn.Linear(d, cq)

    def forward(self, q_src, kv_src):  # (B, C, h, w) each, same h, w -> (B, cq, h, w)
        b, _, h, w = q_src.shape
        qw, size = _windows(q_src, self.win)
        kw, _ = _windows(kv_src, self.win)
        n, L, _ = qw.shape
        q = self.q(self.nq(qw))
        k, v = self.kv(self.nkv(kw)).chunk(2, dim=-1)
        hd = q.shape[-1] // self.heads

        def split(t):
            return t.view(n, L, self.heads, hd).transpose(1, 2)

        o = F.scaled_dot_product_attention(split(q), split(k), split(v))
        o = self.o(o.transpose(1, 2).reshape(n, L, -1))
        return _unwindows(o, b, size, (h, w), self.win)


def _box_mean_1d(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Mean over a window of k along `dim`, clipped at the ends, from one cumulative sum."""
    n, r = x.shape[dim], k // 2
    c = F.pad(x.movedim(dim, -1), (r + 1, r)).cumsum(-1)
    s = c[..., k:] - c[..., :-k]
    idx = torch.arange(n, device=x.device)
    count = (torch.clamp(idx + r, max=n - 1) - torch.clamp(idx - r, min=0) + 1).to(x.dtype)
    return (s / count).movedim(-1, dim)


def local_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over the k x k box around each pixel, the box clipped at the border (what avg_pool2d with
    count_include_pad=False gives), as two 1-D running sums: a few operations per pixel instead of k^2.
    Separable because the clipped box is the product of a clipped row range and a clipped column range."""
    return _box_mean_1d(_box_mean_1d(x, k, 3), k, 2)


class GroupChannelAttention(nn.Module):
    """Channel gates from (branch, diffusion) statistics, computed independently per channel group.

    The statistics are local means (a `pool` x `pool` box around each pixel) rather than a global
    average: a tile-wide pooling would make every pixel depend on the whole tile, and tiled inference
    would show seams."""

    def __init__(self, dim: int, cdiff: int, groups: int, pool: int = 15):
        super().__init__()
        g = groups if dim % groups == 0 else 1
        self.g, self.pool = g, pool
        self.dproj = nn.Conv2d(cdiff, dim, 1)
        self.fc1 = nn.Conv2d(2 * dim, dim, 1, groups=g)
        self.fc2 = nn.Conv2d(dim, dim, 1, groups=g)

    def forward(self, x, diff):
        b, c, h, w = x.shape
        px = local_mean(x, self.pool)
        pd = local_mean(self.dproj(diff), self.pool)
        # interleave so that group j of fc1 sees its own channel slice of both sources
        s = torch.cat([px.view(b, self.g, c // self.g, h, w), pd.view(b, self.g, c // self.g, h, w)], 2)
        gate = torch.sigmoid(self.fc2(F.gelu(self.fc1(s.view(b, 2 * c, h, w)))))
        return x * gate


class Guidance(nn.Module):
    """Diffusion guidance of one branch: fusion at its input, GCA + cross-attention at its output."""

    def __init__(self, dim: int, cdiff: int, groups: int, heads: int, win: int):
        super().__init__()
        self.fuse = nn.Sequential(nn.Conv2d(dim + cdiff, dim, 1), ChannelNorm(dim), nn.GELU())
        self.gca = GroupChannelAttention(dim, cdiff, groups)
        self.down = nn.Conv2d(dim, dim, 3, stride=2, padding=1)
        self.xattn = WindowAttention(dim, 2 * cdiff, heads, win)
        self.gamma = nn.Parameter(torch.full((1, dim, 1, 1), 0.1))

    def inp(self, stem, d1):
        return self.fuse(torch.cat([stem, d1], 1))

    def out(self, x, d1, e2):
        x = self.gca(x, d1)
        xa = self.xattn(self.down(x), e2)  # half resolution, like e2
        return x + self.gamma * F.interpolate(xa, size=x.shape[-2:], mode="bilinear", align_corners=False)


class CNNBranch(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.b1 = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), ChannelNorm(dim), nn.GELU(),
                                nn.Conv2d(dim, dim, 3, padding=1), ChannelNorm(dim))
        self.b2 = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=2, dilation=2), ChannelNorm(dim), nn.GELU(),
                                nn.Conv2d(dim, dim, 3, padding=1), ChannelNorm(dim))

    def forward(self, x):
        x = F.gelu(x + self.b1(x))
        return F.gelu(x + self.b2(x))


class MambaBranch(nn.Module):
    def __init__(self, dim, d_state, ssm_ratio):
        super().__init__()
        self.down = nn.Conv2d(dim, dim, 3, stride=2, padding=1)
        self.block = SS2DBlock(dim, d_state=d_state, ssm_ratio=ssm_ratio, mlp_ratio=2.0)
        self.up = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        y = self.block(self.down(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.up(F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False))


class TransformerBranch(nn.Module):
    def __init__(self, dim, heads, win):
        super().__init__()
        self.down = nn.Conv2d(dim, dim, 3, stride=2, padding=1)
        self.attn = WindowAttention(dim, dim, heads, win)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.up = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        y = self.down(x)
        y = y + self.attn(y, y)
        y = y + self.mlp(self.norm(y.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return x + self.up(F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False))


class BDGF(nn.Module):
    def __init__(self, params: dict, modality_bands: list[int], num_classes: int):
        super().__init__()
        p = {**DEFAULT_PARAMS, **(params or {})}
        self.params = p
        self.modality_bands = checked_modality_bands(modality_bands)
        self.n_mod = len(self.modality_bands)
        self.num_classes = int(num_classes)
        channels = sum(self.modality_bands)
        dim, c = int(p["dim"]), int(p["diff_dim"])
        self.T = int(p["timesteps"])
        self.feature_t = min(int(p["feature_t"]), self.T - 1)

        betas = beta_schedule(str(p["schedule"]), self.T)
        abar = torch.cumprod(1 - betas, 0)
        self.register_buffer("sqrt_abar", abar.sqrt(), persistent=False)
        self.register_buffer("sqrt_1m_abar", (1 - abar).sqrt(), persistent=False)
        # running per-modality denoising losses (EMA), saved with the model
        self.register_buffer("running_loss", torch.ones(self.n_mod))

        self.denoiser = Denoiser(channels, self.n_mod, c)
        self.stem = nn.Sequential(nn.Conv2d(channels, dim, 1), ChannelNorm(dim), nn.GELU(),
                                  nn.Conv2d(dim, dim, 3, padding=1), ChannelNorm(dim), nn.GELU())
        heads, win, groups = int(p["heads"]), int(p["window"]), int(p["groups"])
        self.branch_names = ("cnn", "mamba", "transformer")
        self.branches = nn.ModuleDict({
            "cnn": CNNBranch(dim),
            "mamba": MambaBranch(dim, int(p["d_state"]), float(p["ssm_ratio"])),
            "transformer": TransformerBranch(dim, heads, win),
        })
        self.guides = nn.ModuleDict({k: Guidance(dim, c, groups, heads, win) for k in self.branch_names})
        self.heads = nn.ModuleDict({k: nn.Conv2d(dim, self.num_classes, 1) for k in self.branch_names})
        self.fused_head = nn.Sequential(nn.Conv2d(3 * dim, dim, 1), ChannelNorm(dim), nn.GELU(),
                                        nn.Conv2d(dim, self.num_classes, 1))
        self.spectral = None
        if int(p.get("spectral_dim") or 0) > 0:
            from .spectral import SpectralHead
            self.spectral = SpectralHead(channels, self.num_classes, int(p["spectral_dim"]),
                                         2 * int(p["spectral_dim"]), int(p.get("spectral_conv1d") or 0))
        self._extra: dict = {}
        self.last_branch_logits: dict = {}

    # ---------------------------------------------------------------- diffusion
    def _pad(self, inputs):
        H, W = inputs[0].shape[-2:]
        ph, pw = (-H) % 4, (-W) % 4
        if ph or pw:
            inputs = [F.pad(x, (0, pw, 0, ph), mode="replicate") for x in inputs]
        return torch.cat(inputs, dim=1), H, W

    def _q_sample(self, x0, t, noise):
        return (self.sqrt_abar[t].view(-1, 1, 1, 1) * x0 + self.sqrt_1m_abar[t].view(-1, 1, 1, 1) * noise)

    def _denoiser_input(self, xt, present):  # present: (B, n_mod) float 0/1
        chans = torch.repeat_interleave(present, torch.tensor(self.modality_bands, device=xt.device), dim=1)
        b, _, h, w = xt.shape
        return torch.cat([xt * chans[:, :, None, None], present[:, :, None, None].expand(b, self.n_mod, h, w)], 1)

    def modality_mask_probs(self) -> torch.Tensor:
        """Masking probability per modality: largest for the modality with the smallest running loss."""
        if self.n_mod == 1:
            return torch.zeros(1, device=self.running_loss.device)
        p = self.params
        r = self.running_loss / self.running_loss.mean().clamp(min=1e-8)
        w = torch.softmax(-r / float(p["mask_temperature"]), 0)
        return float(p["mask_p_min"]) + (float(p["mask_p_max"]) - float(p["mask_p_min"])) * w

    def pretrain_step(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """One unlabelled DDPM step with adaptive modality masking; returns the loss to backpropagate."""
        x0, _, _ = self._pad(inputs)
        b = x0.shape[0]
        dev = x0.device
        t = torch.randint(0, self.T, (b,), device=dev)
        noise = torch.randn_like(x0)
        xt = self._q_sample(x0, t, noise)
        probs = self.modality_mask_probs().to(dev)
        masked = torch.rand(b, self.n_mod, device=dev) < probs
        all_masked = masked.all(1)
        if all_masked.any():  # keep at least one modality visible per sample
            keep = torch.randint(0, self.n_mod, (b,), device=dev)
            masked[all_masked, keep[all_masked]] = False
        present = (~masked).float()
        pred = self.denoiser(self._denoiser_input(xt, present), t)
        err = (pred - x0).pow(2)
        per_mod = torch.stack([e.mean((1, 2, 3)) for e in err.split(self.modality_bands, dim=1)], 1)  # (B, n_mod)
        with torch.no_grad():
            vis = present.sum(0)
            seen = vis > 0
            if seen.any():
                cur = (per_mod.detach() * present).sum(0) / vis.clamp(min=1)
                m = float(self.params["loss_ema"])
                self.running_loss[seen] = m * self.running_loss[seen] + (1 - m) * cur[seen]
        return per_mod.mean()

    # ---------------------------------------------------------------- classification
    def extra_losses(self) -> dict:
        return dict(self._extra)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if len(inputs) != self.n_mod:
            raise ValueError(f"expected {self.n_mod} modalities, got {len(inputs)}")
        x0, H, W = self._pad(inputs)
        b = x0.shape[0]
        t = torch.full((b,), self.feature_t, dtype=torch.long, device=x0.device)
        noise = torch.randn_like(x0) if self.training else torch.zeros_like(x0)
        xt = self._q_sample(x0, t, noise)
        present = torch.ones(b, self.n_mod, device=x0.device)
        if self.params["freeze_diffusion"]:
            with torch.no_grad():
                d1, e2 = self.denoiser.features(self._denoiser_input(xt, present), t)
        else:
            d1, e2 = self.denoiser.features(self._denoiser_input(xt, present), t)
        stem = self.stem(x0)
        feats, logits = {}, {}
        for k in self.branch_names:
            g = self.guides[k]
            f = g.out(self.branches[k](g.inp(stem, d1)), d1, e2)
            feats[k] = f
            logits[k] = self.heads[k](f)[..., :H, :W]
        fused = self.fused_head(torch.cat([feats[k] for k in self.branch_names], 1))[..., :H, :W]
        if self.spectral is not None:
            fused = fused + self.spectral(list(inputs))
        self.last_branch_logits = {k: v.detach() for k, v in logits.items()}
        if self.training:
            self._extra = self._mutual_losses(fused, logits, {k: f[..., :H, :W] for k, f in feats.items()})
        else:
            self._extra = {}
        return fused

    def _mutual_losses(self, fused, logits, feats) -> dict:
        p = self.params
        T = float(p["kl_temperature"])
        logp_f = F.log_softmax(fused.detach() / T, dim=1)
        p_f = logp_f.exp()
        ent_f = -(p_f * logp_f).sum(1)
        kl, ent = 0.0, 0.0
        for k in self.branch_names:
            logp_b = F.log_softmax(logits[k] / T, dim=1)
            kl = kl + (p_f * (logp_f - logp_b)).sum(1).mean() * T * T
            ent_b = -(logp_b.exp() * logp_b).sum(1)
            ent = ent + (ent_b - ent_f).pow(2).mean()
        mean_f = torch.stack([feats[k] for k in self.branch_names], 0).mean(0).detach()
        feat = sum((1 - F.cosine_similarity(feats[k], mean_f, dim=1)).mean() for k in self.branch_names)
        n = len(self.branch_names)
        return {
            "mutual_kl": float(p["mutual_weight"]) * kl / n,
            "entropy_align": float(p["entropy_weight"]) * ent / n,
            "feature_align": float(p["feature_weight"]) * feat / n,
        }


def build(params: dict, modality_bands: list[int], num_classes: int) -> nn.Module:
    return BDGF(params, modality_bands, num_classes)
