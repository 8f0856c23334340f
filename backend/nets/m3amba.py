"""M3amba-style dense multimodal classifier: SS2D encoders per modality, Cross-SS2D fusion, optional
frozen-CLIP features through modality adapters, and a light decoder to per-pixel logits.

    per modality m:  stem (1x1 spectral reduction + 3x3 conv) at full resolution
                     -> strided 3x3 conv (downsample) -> [+ CLIP adapter_m] -> `depth` SS2D blocks
    fusion:          HSI only: `fusion_depth` more SS2D blocks on the single stream.
                     With aux modalities: for every aux k, `fusion_depth` Cross-SS2D blocks on the pair
                     (HSI, aux_k), a 1x1 merge of the pair's two outputs, then the mean over k.
    decoder:         upsample the fused map to full resolution, concat with the full-resolution stem
                     features (HSI, and the mean of the aux stems), 3x3 conv, 1x1 conv -> logits.

forward(inputs: list of (B, bands_m, H, W)) -> (B, num_classes, H, W), any H, W >= 8.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import ChannelNorm, checked_modality_bands
from .ss2d import CrossSS2DBlock, SS2DBlock

# Context a tile needs around its core. SS2D scans the whole tile, so no halo makes tiled output exactly
# equal to whole-image output; 32 px keeps the (decaying) influence of the tile edge small.
HALO = 32

DEFAULT_PARAMS = {
    "dim": 32,  # channels of every stream
    "depth": 1,  # SS2D blocks per modality encoder
    "fusion_depth": 1,  # Cross-SS2D blocks per (HSI, aux) pair (SS2D blocks when HSI only)
    "d_state": 4,  # 8 before: the scans were half of a window's time; 4 scores as well (see the README)
    "ssm_ratio": 1.5,
    "mlp_ratio": 2.0,
    "downsample": 4,  # resolution of the SS2D stages: 1 (full), 2 (half: 4x shorter scans) or 4 (16x)
    "clip_checkpoint": None,  # path to a CLIP ViT .safetensors (open_clip/OpenAI layout), or None
    "clip_quick_gelu": True,  # OpenAI weights use QuickGELU; most open_clip-trained ones use GELU
    "clip_adapter_dim": 32,
    "clip_image_size": None,  # side the 3-channel image is resized to; None: the checkpoint's own
    # > 0: a per-pixel spectral path (nets.spectral.SpectralHead) of this width adds its logits to the
    # decoder's; 0 (every package made before issue 20) builds the network exactly as before.
    "spectral_dim": 0,
    "spectral_conv1d": 0,
    # 1: a 1x1 reconstruction head on the decoder's input, for `pretrain_step` (masked reconstruction of
    # the unlabelled scene before the labels, issue 20 lever 2); 0 (packages before it): no head.
    "masked_reconstruction": 0,
}
# pretrain_step: the share of MASK_BLOCK px blocks hidden from the network, whose inputs it must rebuild.
MASK_SHARE = 0.5
MASK_BLOCK = 8


class Stem(nn.Module):
    def __init__(self, bands: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(bands, dim, 1), ChannelNorm(dim), nn.GELU(),
            nn.Conv2d(dim, dim, 3, padding=1), ChannelNorm(dim), nn.GELU(),
        )

    def forward(self, x):
        return self.net(x)


class ClipAdapter(nn.Module):
    """Bottleneck MLP on CLIP patch tokens, upsampled and added to a stream."""

    def __init__(self, width: int, hidden: int, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, tokens, size):  # tokens (B, g, g, width) -> (B, dim, *size)
        y = self.fc2(F.gelu(self.fc1(tokens))).permute(0, 3, 1, 2)
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


class M3amba(nn.Module):
    def __init__(self, params: dict, modality_bands: list[int], num_classes: int):
        super().__init__()
        p = {**DEFAULT_PARAMS, **(params or {})}
        self.params = p
        self.modality_bands = checked_modality_bands(modality_bands)
        self.num_classes = int(num_classes)
        dim, ds = int(p["dim"]), int(p["downsample"])
        if ds not in (1, 2, 4):
            raise ValueError("downsample must be 1, 2 or 4")
        self.ds = ds
        n_mod = len(self.modality_bands)
        blk = dict(d_state=int(p["d_state"]), ssm_ratio=float(p["ssm_ratio"]), mlp_ratio=float(p["mlp_ratio"]))

        self.stems = nn.ModuleList([Stem(b, dim) for b in self.modality_bands])
        self.downs = nn.ModuleList([
            nn.Conv2d(dim, dim, 2 * ds - 1, stride=ds, padding=ds - 1) if ds > 1 else nn.Identity()
            for _ in range(n_mod)
        ])
        self.encoders = nn.ModuleList([
            nn.ModuleList([SS2DBlock(dim, **blk) for _ in range(int(p["depth"]))]) for _ in range(n_mod)
        ])
        if n_mod == 1:
            self.fusion = nn.ModuleList([SS2DBlock(dim, **blk) for _ in range(int(p["fusion_depth"]))])
        else:
            self.cross = nn.ModuleList([
                nn.ModuleList([CrossSS2DBlock(dim, **blk) for _ in range(int(p["fusion_depth"]))])
                for _ in range(n_mod - 1)
            ])
            self.pair_merge = nn.ModuleList([nn.Linear(2 * dim, dim) for _ in range(n_mod - 1)])
        self.fused_norm = nn.LayerNorm(dim)
        dec_in = dim * (2 if n_mod == 1 else 3)
        self.decoder = nn.Sequential(
            nn.Conv2d(dec_in, dim, 3, padding=1), ChannelNorm(dim), nn.GELU(), nn.Conv2d(dim, self.num_classes, 1)
        )

        # Only with masked_reconstruction: the state dict of every earlier package stays as it was.
        self.reconstruct = nn.Conv2d(dec_in, sum(self.modality_bands), 1) if int(p.get("masked_reconstruction") or 0) else None
        self.pretrain_enabled = self.reconstruct is not None

        self.spectral = None
        if int(p.get("spectral_dim") or 0) > 0:
            from .spectral import SpectralHead
            self.spectral = SpectralHead(sum(self.modality_bands), self.num_classes, int(p["spectral_dim"]),
                                         2 * int(p["spectral_dim"]), int(p.get("spectral_conv1d") or 0))

        self.uses_clip = bool(p.get("clip_checkpoint"))
        if self.uses_clip:
            from .clip import CLIPVisual

            # The frozen tower is part of the module (and so of its state dict): a saved model is then
            # self-contained and does not need the checkpoint file at inference time.
            self.clip = CLIPVisual.from_file(str(p["clip_checkpoint"]), quick_gelu=bool(p["clip_quick_gelu"]))
            self.clip_image_size = int(p["clip_image_size"] or self.clip.image_size)
            self.to_rgb = nn.Conv2d(self.modality_bands[0], 3, 1)
            self.clip_adapters = nn.ModuleList([
                ClipAdapter(self.clip.width, int(p["clip_adapter_dim"]), dim) for _ in range(n_mod)
            ])

    def extra_losses(self) -> dict:
        return {}

    def _clip_tokens(self, hsi):
        from .clip import normalise_for_clip

        rgb = torch.sigmoid(self.to_rgb(hsi))  # learned band combination -> [0, 1] "image"
        s = self.clip_image_size
        rgb = F.interpolate(rgb, size=(s, s), mode="bilinear", align_corners=False)
        return self.clip(normalise_for_clip(rgb))

    def pretrain_step(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """One unlabelled step: hide MASK_SHARE of the MASK_BLOCK px blocks in every modality (set to 0,
        the standardised mean) and rebuild their inputs from the context: the loss (MSE on the hidden
        pixels) to backpropagate. It trains the stems, scans and fusion on the user's own scene."""
        if self.reconstruct is None:
            raise RuntimeError("built without masked_reconstruction: no reconstruction head")
        b, _, h, w = inputs[0].shape
        gh, gw = -(-h // MASK_BLOCK), -(-w // MASK_BLOCK)
        draw = torch.rand(b, 1, gh, gw, device=inputs[0].device)
        # the lowest draw of each sample is always hidden and the highest always seen: a step never has
        # nothing to rebuild, nor nothing to rebuild it from
        lowest, highest = draw == draw.amin(dim=(2, 3), keepdim=True), draw == draw.amax(dim=(2, 3), keepdim=True)
        hidden = (((draw < MASK_SHARE) | lowest) & ~highest).float()
        hidden = F.interpolate(hidden, scale_factor=MASK_BLOCK, mode="nearest")[..., :h, :w]
        seen = [x * (1 - hidden) for x in inputs]
        features, size = self._decoder_input(seen)
        rebuilt = self.reconstruct(features)[..., :size[0], :size[1]]
        target = torch.cat(inputs, dim=1)
        err = (rebuilt - target).pow(2).mean(1, keepdim=True)
        return (err * hidden).sum() / hidden.sum().clamp(min=1.0)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        features, (H, W) = self._decoder_input(inputs)
        logits = self.decoder(features)
        if self.spectral is not None:
            logits = logits + self.spectral(self._padded(inputs))
        return logits[..., :H, :W]

    def _padded(self, inputs):
        H, W = inputs[0].shape[-2:]
        ph, pw = (-H) % self.ds, (-W) % self.ds
        return [F.pad(x, (0, pw, 0, ph), mode="replicate") for x in inputs] if ph or pw else inputs

    def _decoder_input(self, inputs: list[torch.Tensor]):
        """(the decoder's input (B, dec_in, H', W') on the padded grid, the unpadded (H, W))."""
        if len(inputs) != len(self.modality_bands):
            raise ValueError(f"expected {len(self.modality_bands)} modalities, got {len(inputs)}")
        H, W = inputs[0].shape[-2:]
        inputs = self._padded(inputs)
        full = [stem(x) for stem, x in zip(self.stems, inputs)]
        low = [down(f) for down, f in zip(self.downs, full)]
        if self.uses_clip:
            tokens = self._clip_tokens(inputs[0])
            low = [f + ad(tokens, f.shape[-2:]) for f, ad in zip(low, self.clip_adapters)]
        streams = []
        for f, enc in zip(low, self.encoders):
            x = f.permute(0, 2, 3, 1)
            for blk in enc:
                x = blk(x)
            streams.append(x)
        hsi = streams[0]
        if len(streams) == 1:
            fused = hsi
            for blk in self.fusion:
                fused = blk(fused)
        else:
            # Pairwise fusion, HSI as the anchor of every pair, then the MEAN over the pairs (not a concat):
            # the fused width stays `dim` whatever the number of aux modalities, every pair shares one scale
            # so no aux dominates by channel count, and an aux that is blanked (zero-filled nodata,
            # modality dropout in training) only dilutes the mean instead of feeding garbage channels to
            # a decoder that expects them.  Each pair keeps its own Cross-SS2D weights (DSM and SAR call
            # for different exchanges).
            outs = []
            for k, aux in enumerate(streams[1:]):
                h, a = hsi, aux
                for blk in self.cross[k]:
                    h, a = blk(h, a)
                outs.append(self.pair_merge[k](torch.cat([h, a], dim=-1)))
            fused = torch.stack(outs, 0).mean(0)
        fused = self.fused_norm(fused).permute(0, 3, 1, 2)
        Hp, Wp = full[0].shape[-2:]
        if self.ds > 1:
            fused = F.interpolate(fused, size=(Hp, Wp), mode="bilinear", align_corners=False)
        dec = [fused, full[0]]
        if len(full) > 1:
            # Summed pairwise, not torch.stack(...).mean(0): elementwise ops keep the stems' channel-last
            # layout, so the concat and the decoder's 3x3 conv (a third of a window's time) run on
            # channel-last memory; a stacked mean came out channel-first and made both ~2.5x slower.
            aux = full[1]
            for f in full[2:]:
                aux = aux + f
            dec.append(aux if len(full) == 2 else aux / (len(full) - 1))
        return torch.cat(dec, dim=1), (H, W)


def build(params: dict, modality_bands: list[int], num_classes: int) -> nn.Module:
    return M3amba(params, modality_bands, num_classes)
