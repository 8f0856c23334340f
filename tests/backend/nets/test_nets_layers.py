import pytest
import torch

from backend.nets.layers import ChannelNorm


def test_channel_norm_is_per_pixel():
    norm = ChannelNorm(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 6, 10, 12) * 3 + 1
    y = norm(x)
    assert torch.allclose(norm(x[:, :, 2:7, 3:9]), y[:, :, 2:7, 3:9], atol=1e-6)
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (6,), norm.weight, norm.bias).permute(0, 3, 1, 2)
    assert torch.allclose(y, ref, atol=1e-5)


@pytest.mark.parametrize("arch", ["m3amba", "bdgf"])
def test_registry_builds(arch):
    from backend import nets

    params = nets.default_params(arch)
    assert params["dim"] == 32
    assert nets.halo(arch) > 0
    model = nets.build(arch, {"dim": 16}, [5, 1], 3).eval()
    with torch.no_grad():
        assert model([torch.randn(1, 5, 9, 10), torch.randn(1, 1, 9, 10)]).shape == (1, 3, 9, 10)
