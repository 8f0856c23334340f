import pytest
import torch
from safetensors.torch import save_file

from backend.nets.clip import CLIPVisual, random_clip_state_dict
from backend.nets.m3amba import build


@pytest.fixture
def clip_path(tmp_path):
    sd = random_clip_state_dict(width=64, layers=2, patch=8, image=32, embed_dim=32, seed=1)
    sd["transformer.resblocks.0.ln_1.weight"] = torch.ones(16)  # a text-tower key: must be ignored
    p = tmp_path / "tiny_clip.safetensors"
    save_file(sd, str(p))
    return str(p)


def test_loads_and_infers_shapes(clip_path):
    m = CLIPVisual.from_file(clip_path)
    assert (m.width, m.layers, m.patch, m.grid, m.heads, m.image_size) == (64, 2, 8, 4, 1, 32)
    assert not any(p.requires_grad for p in m.parameters())
    ref = random_clip_state_dict(width=64, layers=2, patch=8, image=32, embed_dim=32, seed=1)
    assert torch.equal(m.transformer.resblocks[1].attn.in_proj_weight,
                       ref["visual.transformer.resblocks.1.attn.in_proj_weight"])
    tok = m(torch.randn(2, 3, 32, 32))
    assert tok.shape == (2, 4, 4, 64)
    tok = m(torch.randn(1, 3, 48, 40))  # other sizes: interpolated position embedding
    assert tok.shape == (1, 6, 5, 64)
    m.train()
    assert not m.training


def test_refuses_non_safetensors(tmp_path):
    p = tmp_path / "clip.pt"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError):
        CLIPVisual.from_file(str(p))
    with pytest.raises(FileNotFoundError):
        CLIPVisual.from_file(str(tmp_path / "missing.safetensors"))


def test_m3amba_with_clip(clip_path):
    model = build({"clip_checkpoint": clip_path, "dim": 16}, [5, 1], 3)
    assert model.uses_clip
    assert not build({"dim": 16}, [5, 1], 3).uses_clip
    clip_params = list(model.clip.parameters())
    assert clip_params and not any(p.requires_grad for p in clip_params)
    xs = [torch.randn(2, 5, 21, 17), torch.randn(2, 1, 21, 17)]
    model.train()
    assert not model.clip.training
    y = model(xs)
    assert y.shape == (2, 3, 21, 17)
    y.square().mean().backward()
    assert all(p.grad is None for p in clip_params)
    assert model.to_rgb.weight.grad is not None and model.to_rgb.weight.grad.abs().sum() > 0
    assert all(a.fc1.weight.grad is not None for a in model.clip_adapters)
    model.eval()
    with torch.no_grad():
        y1 = model(xs)
        model.clip.conv1.weight.mul_(3.0)  # different CLIP features -> different output
        y2 = model(xs)
    assert (y1 - y2).abs().max() > 1e-5
