import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread_seeded():
    """Small tensors: one thread is faster and steadier (the CI box may be shared). Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(n)


def _toy_task(n_aux_bands=1, hsi_bands=4, size=16, seed=0):
    """2-class toy: the class is the sign of the aux modality (blocky pattern); the HSI is pure noise."""
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 2, (1, 1, size // 4, size // 4), generator=g).float()
    pattern = torch.nn.functional.interpolate(blocks, size=(size, size), mode="nearest")
    aux = (pattern * 2 - 1) + 0.1 * torch.randn(1, n_aux_bands, size, size, generator=g)
    hsi = torch.randn(1, hsi_bands, size, size, generator=g)
    labels = pattern[:, 0].long()
    return [hsi, aux], labels


def _overfit(model, inputs, labels, steps, lr=3e-3, extra=True):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        if extra:
            loss = loss + sum(model.extra_losses().values())
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        pred = model(inputs).argmax(1)
    return (pred == labels).float().mean().item()


@pytest.fixture
def toy_task():
    return _toy_task


@pytest.fixture
def overfit():
    return _overfit
