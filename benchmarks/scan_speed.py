"""Time our CPU selective scan against the per-step reference loop (forward + backward).

    python benchmarks/scan_speed.py [--batch 64 --dim 128 --length 256 --state 16 --repeats 3 --threads 0]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from backend.nets.scan import selective_scan_cpu, selective_scan_reference  # noqa: E402


def make(b, d, l, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, d, l, generator=g)
    delta = torch.randn(b, d, l, generator=g) * 0.5
    A = -torch.exp(torch.randn(d, n, generator=g) * 0.5)
    B = torch.randn(b, n, l, generator=g)
    C = torch.randn(b, n, l, generator=g)
    D = torch.randn(d, generator=g)
    z = torch.randn(b, d, l, generator=g)
    bias = torch.randn(d, generator=g) * 0.1
    return [t.requires_grad_() for t in (u, delta, A, B, C, D, z, bias)]


def loop_unbind(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """A fairer per-step baseline: the same loop, but the inputs are split once with unbind (whose
    backward is a single stack) instead of being indexed step by step."""
    delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = torch.nn.functional.softplus(delta)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for dt, ut, bt, ct in zip(delta.unbind(-1), u.unbind(-1), B.unbind(-1), C.unbind(-1)):
        dt = dt[..., None]
        h = torch.exp(dt * A) * h + dt * bt[:, None, :] * ut[..., None]
        ys.append(torch.einsum("bdn,bn->bd", h, ct))
    y = torch.stack(ys, -1) + u * D[:, None]
    return y * torch.nn.functional.silu(z)


def run(fn, ts):
    u, delta, A, B, C, D, z, bias = ts
    for t in ts:
        t.grad = None
    t0 = time.perf_counter()
    out = fn(u, delta, A, B, C, D=D, z=z, delta_bias=bias, delta_softplus=True)
    t1 = time.perf_counter()
    out.square().mean().backward()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--state", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    ts = make(a.batch, a.dim, a.length, a.state)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"b={a.batch} d={a.dim} l={a.length} n={a.state}")
    res = {}
    for name, fn in (("chunked", selective_scan_cpu), ("reference", selective_scan_reference),
                     ("loop-unbind", loop_unbind)):
        run(fn, ts)  # warm-up
        times = [run(fn, ts) for _ in range(a.repeats)]
        fwd = min(t[0] for t in times)
        tot = min(t[1] for t in times)
        res[name] = tot
        print(f"{name:10s} forward {fwd * 1e3:8.1f} ms   forward+backward {tot * 1e3:8.1f} ms (best of {a.repeats})")
    print(f"speed-up (forward+backward) vs reference: {res['reference'] / res['chunked']:.1f}x, "
          f"vs loop-unbind: {res['loop-unbind'] / res['chunked']:.1f}x")


if __name__ == "__main__":
    main()
