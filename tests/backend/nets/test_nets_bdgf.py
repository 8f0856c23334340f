import pytest
import torch

from backend.nets.bdgf import DEFAULT_PARAMS, beta_schedule, build


@pytest.mark.parametrize("bands", [[6], [6, 1], [6, 1, 2]])
@pytest.mark.parametrize("hw", [(21, 17), (8, 8)])
def test_shapes(bands, hw):
    model = build({}, bands, 4).eval()
    with torch.no_grad():
        y = model([torch.randn(2, b, *hw) for b in bands])
    assert y.shape == (2, 4, *hw)
    assert set(model.last_branch_logits) == {"cnn", "mamba", "transformer"}
    assert all(v.shape == y.shape for v in model.last_branch_logits.values())
    assert model.extra_losses() == {}


def test_schedules():
    for kind in ("cosine", "linear"):
        b = beta_schedule(kind, 100)
        assert b.shape == (100,) and (b > 0).all() and (b < 1).all()
    with pytest.raises(ValueError):
        beta_schedule("quadratic", 10)


def test_training_gradients_and_extra_losses():
    model = build({}, [6, 1, 2], 3).train()
    xs = [torch.randn(2, b, 13, 10, requires_grad=True) for b in [6, 1, 2]]
    y = model(xs)
    extra = model.extra_losses()
    assert set(extra) == {"mutual_kl", "entropy_align", "feature_align"}
    assert all(v.dim() == 0 and torch.isfinite(v) and v.requires_grad for v in extra.values())
    (y.square().mean() + sum(extra.values())).backward()
    for x in xs:
        assert x.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None and not n.startswith("denoiser.out")]
    assert not missing


def test_eval_deterministic():
    model = build({}, [5, 1], 3).eval()
    xs = [torch.randn(1, 5, 12, 9), torch.randn(1, 1, 12, 9)]
    with torch.no_grad():
        assert torch.equal(model(xs), model(xs))


def test_pretrain_step_and_adaptive_masking():
    model = build({}, [6, 1], 3).train()
    xs = [torch.randn(2, 6, 12, 12), torch.randn(2, 1, 12, 12)]
    before = model.running_loss.clone()
    loss = model.pretrain_step(xs)
    assert loss.dim() == 0 and loss.requires_grad
    loss.backward()
    assert model.denoiser.out[-1].weight.grad is not None
    assert not torch.equal(before, model.running_loss)
    assert "running_loss" in model.state_dict()
    # the modality that is easiest to denoise gets masked most often
    model.running_loss.copy_(torch.tensor([0.1, 1.0]))
    p = model.modality_mask_probs()
    assert p[0] > p[1] and (p >= DEFAULT_PARAMS["mask_p_min"]).all() and (p <= DEFAULT_PARAMS["mask_p_max"]).all()
    model.running_loss.copy_(torch.tensor([1.0, 0.1]))
    p = model.modality_mask_probs()
    assert p[1] > p[0]
    # a single modality is never masked
    single = build({}, [6], 3)
    assert single.modality_mask_probs().tolist() == [0.0]
    single.pretrain_step([torch.randn(1, 6, 8, 8)]).backward()


def test_masking_hides_whole_modalities(monkeypatch):
    model = build({}, [3, 2], 2)
    seen = {}
    real = model._denoiser_input

    def spy(xt, present):
        seen["present"] = present.clone()
        return real(xt, present)

    monkeypatch.setattr(model, "_denoiser_input", spy)
    model.running_loss.copy_(torch.tensor([0.01, 10.0]))
    model.params["mask_p_max"] = 1.0
    model.params["mask_p_min"] = 0.0
    model.pretrain_step([torch.randn(8, 3, 8, 8), torch.randn(8, 2, 8, 8)])
    present = seen["present"]
    assert (present.sum(1) >= 1).all()  # never everything hidden
    assert present[:, 0].mean() < present[:, 1].mean()


def test_overfits_aux_dependent_toy(toy_task, overfit):
    inputs, labels = toy_task()
    model = build({"dim": 16, "diff_dim": 16}, [4, 1], 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(5):  # a few unlabelled pretraining steps, as the trainer does
        opt.zero_grad()
        model.pretrain_step(inputs).backward()
        opt.step()
    acc = overfit(model, inputs, labels, steps=120, lr=5e-3)
    assert acc > 0.9, acc


@pytest.mark.parametrize("shape", [(2, 3, 40, 33), (1, 2, 5, 7), (1, 1, 1, 20)])
def test_local_mean_equals_clipped_average_pooling(shape):
    """The running-sum box mean gives what avg_pool2d(count_include_pad=False) gives, tiles smaller
    than the box included."""
    import torch.nn.functional as F

    from backend.nets.bdgf import local_mean
    x = torch.randn(*shape, dtype=torch.float64)
    expected = F.avg_pool2d(x, 15, stride=1, padding=7, count_include_pad=False)
    assert torch.allclose(local_mean(x, 15), expected, atol=1e-12)
