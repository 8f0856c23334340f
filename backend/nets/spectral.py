"""A per-pixel spectral path and the light spectral-spatial network built on it.

`SpectralEncoder` reads each pixel's whole standardised spectrum (HSI bands, then the aux values) and
nothing around it: an MLP over the bands, optionally after a 1-D convolution along them (a spectral
sequence encoder: neighbouring bands share filters, which few labels need). It is what a random forest
sees, learned end to end. `SpectralHead` adds its logits to any dense network's (m3amba, bdgf:
`spectral_dim` > 0 in their params), so the spatial branch only has to learn what the spectrum misses.

`SpectralSpatial` ("spectral" in the registry) is the light network: the spectral encoder, then a few
dilated 3×3 convolutions over the encoded map for context (receptive field
2·context_layers·dilation+1 px), one
head on the spectral features and one on the context features, summed.

forward(inputs: list of (B, bands_m, H, W)) -> (B, num_classes, H, W), any H, W.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import ChannelNorm, checked_modality_bands

HALO = 16   # ≥ the receptive field's reach (8 px at the defaults): tiled output equals whole-image output

DEFAULT_PARAMS = {
    "dim": 64,             # spectral feature width
    "hidden": 128,         # MLP hidden width
    "conv1d": 0,           # channels of the 1-D convolution along the bands (0: MLP only)
    "context_layers": 4,   # 3×3 convolutions after the spectral encoder …
    "dilation": 2,         # … dilated: a 17 px receptive field (2·layers·dilation + 1)
    "dropout": 0.2,
}


class SpectralEncoder(nn.Module):
    """(B, C, H, W) → (B, dim, H, W), every pixel on its own."""

    def __init__(self, bands: int, dim: int, hidden: int, conv1d: int = 0, dropout: float = 0.2):
        super().__init__()
        self.conv1d = int(conv1d)
        width = bands
        if self.conv1d:
            self.seq = nn.Sequential(nn.Conv1d(1, self.conv1d, 7, padding=3), nn.GELU(),
                                     nn.Conv1d(self.conv1d, self.conv1d, 5, padding=2, stride=2), nn.GELU())
            self.pool = max(1, min(16, (bands + 1) // 2))
            width = bands + self.conv1d * self.pool
        self.mlp = nn.Sequential(nn.Conv2d(width, hidden, 1), ChannelNorm(hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Conv2d(hidden, dim, 1), ChannelNorm(dim), nn.GELU())

    def forward(self, x):
        if self.conv1d:
            b, c, h, w = x.shape
            seq = x.permute(0, 2, 3, 1).reshape(b * h * w, 1, c)
            seq = F.adaptive_avg_pool1d(self.seq(seq), self.pool).reshape(b, h, w, -1).permute(0, 3, 1, 2)
            x = torch.cat([x, seq], 1)
        return self.mlp(x)


class SpectralHead(nn.Module):
    """Per-pixel logits from the concatenated modalities: added to a dense network's logits."""

    def __init__(self, bands: int, num_classes: int, dim: int, hidden: int, conv1d: int = 0, dropout: float = 0.2):
        super().__init__()
        self.encoder = SpectralEncoder(bands, dim, hidden, conv1d, dropout)
        self.head = nn.Conv2d(dim, num_classes, 1)

    def forward(self, inputs):
        return self.head(self.encoder(torch.cat(inputs, 1)))


class SpectralSpatial(nn.Module):
    def __init__(self, params: dict, modality_bands: list[int], num_classes: int):
        super().__init__()
        p = {**DEFAULT_PARAMS, **(params or {})}
        self.params = p
        self.modality_bands = checked_modality_bands(modality_bands)
        dim = int(p["dim"])
        self.encoder = SpectralEncoder(sum(self.modality_bands), dim, int(p["hidden"]), int(p["conv1d"]),
                                       float(p["dropout"]))
        d = int(p["dilation"])
        self.context = nn.ModuleList([
            nn.Sequential(nn.Conv2d(dim, dim, 3, padding=d, dilation=d), ChannelNorm(dim), nn.GELU())
            for _ in range(int(p["context_layers"]))])
        self.drop = nn.Dropout2d(float(p["dropout"]))
        self.spectral_head = nn.Conv2d(dim, num_classes, 1)
        self.context_head = nn.Conv2d(dim, num_classes, 1) if self.context else None

    def forward(self, inputs):
        if len(inputs) != len(self.modality_bands):
            raise ValueError(f"expected {len(self.modality_bands)} modalities, got {len(inputs)}")
        f = self.encoder(torch.cat(inputs, 1))
        logits = self.spectral_head(self.drop(f))
        if self.context_head is not None:
            x = f
            for layer in self.context:
                x = x + layer(x)
            logits = logits + self.context_head(self.drop(x))
        return logits


def build(params: dict, modality_bands: list[int], num_classes: int) -> nn.Module:
    return SpectralSpatial(params, modality_bands, num_classes)
