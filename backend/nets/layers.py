"""Small layers shared by the dense networks."""

import torch
from torch import nn


def checked_modality_bands(modality_bands):
    """The band count of each modality as ints; a network needs at least one modality, none empty."""
    if not modality_bands or any(int(b) < 1 for b in modality_bands):
        raise ValueError(f"modality_bands must be a non-empty list of positive ints, got {modality_bands}")
    return [int(b) for b in modality_bands]


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of each pixel of a (B, C, H, W) map.

    Used instead of GroupNorm/BatchNorm in the dense networks: its statistics are per pixel, so the
    output of a pixel never depends on the rest of the tile (tiled inference stays consistent with
    whole-image inference) nor on the batch size (training batches can be tiny)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        # layer_norm over the last dim of a channel-last *view*: one fused kernel instead of ~9 passes
        # (mean, subtract, square, mean, ...) over a full-resolution map; the result keeps the
        # channel-last strides, which the following convolution takes as they are.
        y = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)
