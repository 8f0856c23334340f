import pytest
import torch

from backend.nets.m3amba import DEFAULT_PARAMS, build


@pytest.mark.parametrize("bands", [[6], [6, 1], [6, 1, 2]])
@pytest.mark.parametrize("hw", [(21, 17), (8, 8), (16, 24)])
def test_shapes(bands, hw):
    model = build({}, bands, 4).eval()
    with torch.no_grad():
        y = model([torch.randn(2, b, *hw) for b in bands])
    assert y.shape == (2, 4, *hw) and y.dtype == torch.float32


def test_downsample_1():
    model = build({"downsample": 1, "dim": 16}, [3, 1], 2).eval()
    with torch.no_grad():
        assert model([torch.randn(1, 3, 9, 11), torch.randn(1, 1, 9, 11)]).shape == (1, 2, 9, 11)


@pytest.mark.parametrize("bands", [[6], [6, 1, 2]])
def test_gradients_flow(bands):
    model = build({}, bands, 3).train()
    xs = [torch.randn(2, b, 13, 10, requires_grad=True) for b in bands]
    model(xs).square().mean().backward()
    for x in xs:
        assert x.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert model.extra_losses() == {}
    assert model.uses_clip is False


def test_eval_deterministic():
    model = build({}, [5, 1], 3).eval()
    xs = [torch.randn(1, 5, 12, 9), torch.randn(1, 1, 12, 9)]
    with torch.no_grad():
        assert torch.equal(model(xs), model(xs))


@pytest.mark.parametrize("bands", [[6, 1], [6, 1, 2, 3]])
def test_decoder_gets_aux_stem_mean_channel_last(bands):
    """The decoder's input is [upsampled fused map, HSI stem, mean of the aux stems], in channel-last
    memory: a channel-first input made its 3x3 convolution (and the concat) ~2.5x slower on CPU."""
    model = build({}, bands, 3).eval()
    seen = {}
    for i, stem in enumerate(model.stems):
        stem.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, out))
    model.decoder[0].register_forward_hook(lambda m, a, out: seen.__setitem__("dec", a[0]))
    with torch.no_grad():
        model([torch.randn(1, b, 16, 20) for b in bands])
    dec, dim = seen["dec"], model.params["dim"]
    assert dec.is_contiguous(memory_format=torch.channels_last)
    aux_mean = torch.stack([seen[i] for i in range(1, len(bands))]).mean(0)
    torch.testing.assert_close(dec[:, 2 * dim:], aux_mean)
    torch.testing.assert_close(dec[:, dim:2 * dim], seen[0])


def test_defaults_and_bad_inputs():
    assert DEFAULT_PARAMS["dim"] == 32
    model = build({}, [5, 1], 3)
    with pytest.raises(ValueError):
        model([torch.randn(1, 5, 8, 8)])


def test_overfits_aux_dependent_toy(toy_task, overfit):
    inputs, labels = toy_task()
    model = build({"dim": 16}, [4, 1], 2)
    acc = overfit(model, inputs, labels, steps=120, lr=5e-3)
    assert acc > 0.9, acc


def test_masked_reconstruction_learns_the_scene_and_leaves_old_packages_alone():
    """pretrain_step (issue 20 lever 2): the loss is over the hidden blocks only, it trains the encoder
    and falls as the network learns the scene; without the option no head exists (state dicts of every
    earlier package load as they were) and the step refuses."""
    torch.manual_seed(0)
    plain = build({}, [12, 1], 3)
    assert not plain.pretrain_enabled and not any(k.startswith("reconstruct") for k in plain.state_dict())
    with pytest.raises(RuntimeError):
        plain.pretrain_step([torch.randn(1, 12, 16, 16), torch.randn(1, 1, 16, 16)])
    net = build({"masked_reconstruction": 1, "spectral_dim": 8}, [12, 1], 3)
    assert net.pretrain_enabled and net.reconstruct.out_channels == 13
    # a smooth scene: each pixel's spectrum is predictable from its neighbours
    grid = torch.linspace(0, 1, 24)
    base = torch.stack([torch.sin(3 * grid[:, None] + k + 2 * grid[None, :]) for k in range(12)])
    xs = [base[None], base[:1][None] * 2]
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = net.pretrain_step(xs)
        optimiser.zero_grad()
        loss.backward()
        assert net.stems[0].net[0].weight.grad.abs().sum() > 0
        optimiser.step()
        losses.append(float(loss))
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    assert net(xs).shape == (1, 3, 24, 24)
