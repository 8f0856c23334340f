"""Our own CLIP image tower (ViT), loading open_clip / OpenAI-layout weights from a safetensors file.

Expected keys (the `visual.` prefix is optional; text-tower keys are ignored):
    visual.conv1.weight                     (width, 3, patch, patch)
    visual.class_embedding                  (width,)
    visual.positional_embedding             (1 + grid*grid, width)
    visual.ln_pre.{weight,bias}             (optional: absent in some exports)
    visual.transformer.resblocks.{i}.ln_1.{weight,bias}
    visual.transformer.resblocks.{i}.attn.in_proj_{weight,bias}     (3*width, width), (3*width,)
    visual.transformer.resblocks.{i}.attn.out_proj.{weight,bias}
    visual.transformer.resblocks.{i}.ln_2.{weight,bias}
    visual.transformer.resblocks.{i}.mlp.c_fc.{weight,bias}         (mlp_width, width)
    visual.transformer.resblocks.{i}.mlp.c_proj.{weight,bias}
    visual.ln_post.{weight,bias}
    visual.proj                             (width, embed_dim), optional

Width, layers, patch size, grid and MLP width come from the shapes; heads = width // 64 as in OpenAI's
models.  The tower is frozen (requires_grad False) and always in eval mode; gradients still flow through
it to whatever produced its input image.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class _QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x):  # (B, N, W)
        b, n, w = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.out_proj(o.transpose(1, 2).reshape(b, n, w))


class _Mlp(nn.Module):
    def __init__(self, width: int, hidden: int, quick_gelu: bool):
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.gelu = _QuickGELU() if quick_gelu else nn.GELU()
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class _ResBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_width: int, quick_gelu: bool):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = _Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = _Mlp(width, mlp_width, quick_gelu)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, width, layers, heads, mlp_width, quick_gelu):
        super().__init__()
        self.resblocks = nn.ModuleList([_ResBlock(width, heads, mlp_width, quick_gelu) for _ in range(layers)])

    def forward(self, x):
        for blk in self.resblocks:
            x = blk(x)
        return x


class CLIPVisual(nn.Module):
    """ViT image tower. forward(img (B, 3, S, S), CLIP-normalised) -> patch tokens (B, g, g, width)."""

    def __init__(self, width: int, layers: int, patch: int, grid: int, mlp_width: int,
                 embed_dim: int | None = None, has_ln_pre: bool = True, quick_gelu: bool = True):
        super().__init__()
        self.width, self.layers, self.patch, self.grid = width, layers, patch, grid
        self.heads = max(1, width // 64)
        self.image_size = patch * grid
        self.conv1 = nn.Conv2d(3, width, patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(1 + grid * grid, width))
        self.ln_pre = nn.LayerNorm(width) if has_ln_pre else nn.Identity()
        self.transformer = _Transformer(width, layers, self.heads, mlp_width, quick_gelu)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, embed_dim)) if embed_dim else None

    @staticmethod
    def _strip(state: dict) -> dict:
        if any(k.startswith("visual.") for k in state):
            return {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
        return dict(state)

    @classmethod
    def from_state_dict(cls, state: dict, quick_gelu: bool = True) -> CLIPVisual:
        sd = cls._strip(state)
        try:
            conv = sd["conv1.weight"]
            pos = sd["positional_embedding"]
        except KeyError as e:
            raise ValueError(f"not a CLIP ViT state dict in open_clip/OpenAI layout: missing {e}") from None
        width, patch = conv.shape[0], conv.shape[-1]
        grid = int(round(math.sqrt(pos.shape[0] - 1)))
        if grid * grid + 1 != pos.shape[0]:
            raise ValueError(f"positional_embedding of {pos.shape[0]} rows is not 1 + a square grid")
        idx = {int(k.split(".")[2]) for k in sd if k.startswith("transformer.resblocks.")}
        layers = (max(idx) + 1) if idx else 0
        mlp_width = sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0] if layers else 4 * width
        proj = sd.get("proj")
        model = cls(width, layers, patch, grid, mlp_width, proj.shape[1] if proj is not None else None,
                    has_ln_pre="ln_pre.weight" in sd, quick_gelu=quick_gelu)
        own = model.state_dict()
        wanted = {k: v for k, v in sd.items() if k in own}
        missing = sorted(set(own) - set(wanted))
        if missing:
            raise ValueError(f"CLIP checkpoint lacks {len(missing)} tensors, e.g. {missing[:3]}")
        for k, v in wanted.items():
            if tuple(v.shape) != tuple(own[k].shape):
                raise ValueError(f"CLIP tensor {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
        model.load_state_dict({k: v.float() for k, v in wanted.items()})
        model.freeze()
        return model

    @classmethod
    def from_file(cls, path: str, quick_gelu: bool = True) -> CLIPVisual:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CLIP checkpoint not found: {path}")
        if not path.endswith(".safetensors"):
            raise ValueError("the CLIP checkpoint must be a .safetensors file (pickled checkpoints are refused)")
        from safetensors.torch import load_file

        return cls.from_state_dict(load_file(path), quick_gelu=quick_gelu)

    def freeze(self):
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        return self

    def train(self, mode: bool = True):  # frozen: always in eval mode
        return super().train(False)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.conv1(img)  # (B, W, gh, gw)
        b, w, gh, gw = x.shape
        x = x.flatten(2).transpose(1, 2)
        pos = self.positional_embedding
        if (gh, gw) != (self.grid, self.grid):  # other input sizes: resample the grid embedding
            grid_pos = pos[1:].reshape(1, self.grid, self.grid, w).permute(0, 3, 1, 2)
            grid_pos = F.interpolate(grid_pos, size=(gh, gw), mode="bilinear", align_corners=False)
            pos = torch.cat([pos[:1], grid_pos.permute(0, 2, 3, 1).reshape(gh * gw, w)], 0)
        cls_tok = self.class_embedding.expand(b, 1, w)
        x = torch.cat([cls_tok, x], dim=1) + pos
        x = self.transformer(self.ln_pre(x))
        x = self.ln_post(x[:, 1:])
        return x.reshape(b, gh, gw, w)


def normalise_for_clip(rgb01: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> CLIP's mean/std normalisation."""
    mean = torch.tensor(CLIP_MEAN, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
    return (rgb01 - mean) / std


def random_clip_state_dict(width: int = 64, layers: int = 2, patch: int = 8, image: int = 32,
                           embed_dim: int = 32, seed: int = 0) -> dict:
    """A randomly initialised visual tower in OpenAI layout (keys prefixed `visual.`), for tests."""
    g = torch.Generator().manual_seed(seed)
    grid = image // patch

    def r(*shape, s=0.02):
        return torch.randn(*shape, generator=g) * s

    sd = {
        "visual.conv1.weight": r(width, 3, patch, patch, s=0.05),
        "visual.class_embedding": r(width),
        "visual.positional_embedding": r(1 + grid * grid, width),
        "visual.ln_pre.weight": torch.ones(width), "visual.ln_pre.bias": torch.zeros(width),
        "visual.ln_post.weight": torch.ones(width), "visual.ln_post.bias": torch.zeros(width),
        "visual.proj": r(width, embed_dim),
    }
    for i in range(layers):
        p = f"visual.transformer.resblocks.{i}."
        sd.update({
            p + "ln_1.weight": torch.ones(width), p + "ln_1.bias": torch.zeros(width),
            p + "ln_2.weight": torch.ones(width), p + "ln_2.bias": torch.zeros(width),
            p + "attn.in_proj_weight": r(3 * width, width, s=0.1), p + "attn.in_proj_bias": torch.zeros(3 * width),
            p + "attn.out_proj.weight": r(width, width, s=0.1), p + "attn.out_proj.bias": torch.zeros(width),
            p + "mlp.c_fc.weight": r(4 * width, width, s=0.1), p + "mlp.c_fc.bias": torch.zeros(4 * width),
            p + "mlp.c_proj.weight": r(width, 4 * width, s=0.1), p + "mlp.c_proj.bias": torch.zeros(width),
        })
    return sd
