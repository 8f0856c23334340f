"""`tiny`: a small dense fusion CNN. It exists so the engine runs end to end and fast in tests;
its receptive field (radius 4 px) is far inside the default halo, so tiled and whole-image
outputs are identical."""

import torch
from torch import nn

DEFAULT_PARAMS = {"dim": 16}
RECEPTIVE_RADIUS = 4
HALO = 8  # twice the receptive radius: margin for the BatchNorm-free edge effects of zero padding


class TinyFusionNet(nn.Module):
    def __init__(self, modality_bands, num_classes, dim):
        super().__init__()
        # One spectral 1×1 projection per modality, so each modality is scaled on its own.
        self.stems = nn.ModuleList(nn.Conv2d(b, dim, 1) for b in modality_bands)
        fused = dim * len(modality_bands)
        self.body = nn.Sequential(
            nn.Conv2d(fused, dim * 2, 3, padding=1), nn.BatchNorm2d(dim * 2), nn.GELU(),
            nn.Conv2d(dim * 2, dim * 2, 3, padding=1), nn.BatchNorm2d(dim * 2), nn.GELU(),
            nn.Conv2d(dim * 2, dim * 2, 3, padding=1, dilation=1), nn.GELU(),
            nn.Conv2d(dim * 2, dim * 2, 3, padding=1), nn.GELU(),
        )
        self.head = nn.Conv2d(dim * 2, num_classes, 1)

    def forward(self, inputs):
        x = torch.cat([stem(t) for stem, t in zip(self.stems, inputs)], dim=1)
        return self.head(self.body(x))


def build(params, modality_bands, num_classes):
    return TinyFusionNet(modality_bands, num_classes, int(params["dim"]))
