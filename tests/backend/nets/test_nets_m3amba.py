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
