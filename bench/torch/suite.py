#!/usr/bin/env python3
"""PyTorch twins of `hiercl bench`'s suite (runtime/cli/bench_suite.c).

Each case builds the same model, data law, initialisation, optimiser and
batch as the hiercl case, written the way an expert writes it today: R
replicas as batched matrix products (torch.bmm over a leading replica axis),
convolutions with filter = stride as one product on reshaped patches, the
training set generated once and sliced per step. Only training steps are
timed. Prints one JSON object with replica_steps_per_s (runs per second for
unit "run" cases).
"""
import argparse
import json
import math
import time

import torch


def lin(R, i, o, std=None, bias=True):
    """R independent (i -> o) layers: uniform(+-1/sqrt(i)) like nn.Linear, or N(0, std^2)."""
    if std is None:
        b = 1 / math.sqrt(i)
        w = torch.empty(R, i, o).uniform_(-b, b)
    else:
        w = torch.randn(R, i, o) * std
    ps = [torch.nn.Parameter(w)]
    if bias:
        ps.append(torch.nn.Parameter(torch.empty(R, 1, o).uniform_(-1 / math.sqrt(i), 1 / math.sqrt(i))))
    return ps


def affine(x, ps):
    return torch.baddbmm(ps[1], x, ps[0]) if len(ps) > 1 else torch.bmm(x, ps[0])


class Case:
    """A model (parameters + forward), a loss and a data generator."""
    unit = "step"


class StaircaseResNet(Case):
    def __init__(s, R, a):
        s.n, s.k, W, L = 30, 10, 40, 5
        s.layers = [lin(R, s.n, W)] + [lin(R, W, W) for _ in range(L - 2)] + [lin(R, W, 1)]
        s.params = [p for l in s.layers for p in l]
        s.lr, s.batch, s.P = 0.01, 20, 60000

    def data(s, R, P):
        x = (torch.randint(0, 2, (R, P, s.n)) * 2 - 1).float()
        return x, torch.cumprod(x[..., :s.k], -1).sum(-1, keepdim=True) / math.sqrt(s.k)

    def forward(s, x):
        h = torch.relu(affine(x, s.layers[0]))
        for l in s.layers[1:-1]:
            h = torch.relu(affine(h, l)) + h
        return affine(h, s.layers[-1])

    def loss(s, f, y):
        return ((f - y) ** 2).mean(dim=(1, 2)).sum()


class RhmCnn(Case):
    """deep_cnn, param = mf: conv weights N(0,1) with pre-activations / sqrt(c_in s),
    readout N(0,1) / H, lr 0.1 x H, cross-entropy, batch 128; one-hot input of
    v = 8 symbols at d = s^L = 4 positions, n_c = 8 classes."""

    def __init__(s, R, a):
        s.v, s.nc, s.sz, s.L, s.H = 8, 8, 2, 2, 256
        s.d = s.sz ** s.L
        cin = [s.v] + [s.H] * (s.L - 1)
        s.convs = [lin(R, c * s.sz, s.H, std=1.0, bias=False) for c in cin]
        s.scale = [1 / math.sqrt(c * s.sz) for c in cin]
        s.readout = lin(R, s.H, s.nc, std=1.0, bias=False)
        s.params = [p for l in s.convs + [s.readout] for p in l]
        s.lr, s.batch, s.P = 0.1 * s.H, 128, 2048

    def data(s, R, P):
        sym = torch.randint(0, s.v, (R, P, s.d))
        x = torch.nn.functional.one_hot(sym, s.v).float()  # [R, P, d, v]
        return x, torch.randint(0, s.nc, (R, P))

    def forward(s, x):  # x [R, B, d, v]
        R, B = x.shape[0], x.shape[1]
        h, pos = x, s.d
        for conv, sc in zip(s.convs, s.scale):
            pos //= s.sz
            patches = h.reshape(R, B * pos, -1)  # filter = stride: one product on patches
            h = torch.relu(torch.bmm(patches, conv[0]) * sc).reshape(R, B, pos, s.H)
        return torch.bmm(h.mean(2), s.readout[0]) / s.H

    def loss(s, f, y):
        return torch.nn.functional.cross_entropy(f.reshape(-1, s.nc), y.reshape(-1)) * f.shape[0]


class RhmFcn(RhmCnn):
    """regular_net depth 1, width 512, ReLU, on the flattened one-hot input."""

    def __init__(s, R, a):
        s.v, s.nc, s.d, W = 8, 8, 4, 512
        s.layers = [lin(R, s.d * s.v, W), lin(R, W, s.nc)]
        s.params = [p for l in s.layers for p in l]
        s.lr, s.batch, s.P = 0.05, 128, 2048

    def forward(s, x):
        x = x.reshape(x.shape[0], x.shape[1], -1)
        return affine(torch.relu(affine(x, s.layers[0])), s.layers[1])


class LinearTeacher(Case):
    """Two-layer leaky-ReLU net, width 40, no biases, N(0, 0.01^2) init, fixed
    readout +-1 (half each), hinge loss, batch 50, d = 50."""

    def __init__(s, R, a):
        s.d, W = 50, 40
        s.w = lin(R, s.d, W, std=0.01, bias=False)
        s.v = torch.cat([torch.ones(W // 2), -torch.ones(W - W // 2)]).reshape(1, W, 1).expand(R, W, 1)
        s.params = s.w
        s.lr, s.batch, s.P = 0.05, 50, 500

    def data(s, R, P):
        ws = torch.nn.functional.normalize(torch.randn(R, 1, s.d), dim=-1)
        x = torch.randn(R, P, s.d)
        return x, torch.sign((x * ws).sum(-1, keepdim=True))

    def forward(s, x):
        return torch.bmm(torch.nn.functional.leaky_relu(torch.bmm(x, s.w[0])), s.v)

    def loss(s, f, y):
        return torch.clamp(1 - y * f, min=0).mean(dim=(1, 2)).sum()


class TaylorQuad(Case):
    """QuadNTK: f(z) = 1/(2 sqrt m) sum_r a_r s''(w0_r.z) (w_r.z)^2, m = 1024, raw
    input d = 16 on the sphere, full-batch gradient descent on 1 024 points, MSE.
    s''(w0.z) is fixed, so it is computed once for the training set."""

    def __init__(s, R, a):
        s.d, s.m = 16, 1024
        s.a = (torch.randint(0, 2, (R, 1, s.m)) * 2 - 1).float()
        s.w0 = torch.randn(R, s.d, s.m)
        s.w = [torch.nn.Parameter(torch.randn(R, s.d, s.m) * 0.01)]
        s.params = s.w
        s.lr, s.batch, s.P = 0.05, 1024, 1024

    def data(s, R, P):
        x = torch.nn.functional.normalize(torch.randn(R, P, s.d), dim=-1) * math.sqrt(s.d)
        beta = torch.nn.functional.normalize(torch.randn(R, 1, s.d), dim=-1)
        z = (x * beta).sum(-1, keepdim=True)
        s.coef = s.a * torch.relu(torch.bmm(x, s.w0)) / (2 * math.sqrt(s.m))  # sigma = relu^3/6: sigma'' = relu
        return x, z ** 4 - 3

    def forward(s, x):
        return ((torch.bmm(x, s.w[0]) ** 2) * s.coef).sum(-1, keepdim=True)

    def loss(s, f, y):
        return ((f - y) ** 2).mean(dim=(1, 2)).sum()


def three_layer_run(R, a):
    """Algorithm 1 (Nichani et al.) as the hiercl case runs it (center_y, eta1 = 0: the
    automatic step, lambda 1e-5): phi = relu(V x)/sqrt(m1); one gradient step on W from 0
    on the first half, in closed form (at W = 0 the output is the constant f0, so
    grad w_j = c_j v with c_j = a_j relu'(b_j)/m2, v = sum_i dL/df_i phi_i), eta making
    mean (w_j . phi_i)^2 = 1; b re-drawn; ridge on the readout over the second half,
    its features from W's rank-1 factors (phi W = (phi v) (-eta c), as hiercl forms them);
    the stage-1 loss, the fit's loss and the test loss on 256 points before and after,
    as hiercl reports them. The system is symmetric positive definite: Cholesky, as in
    hiercl. m1 = m2 = 512, d = 16, 4 000 points. Data and parameters
    are drawn before the clock starts (hiercl draws them before its timed window);
    timed as whole runs (one run = both stages and the two evaluations)."""
    d, m1, m2, n, lam, nt = 16, 512, 512, 4000, 1e-5, 256
    x, xt = torch.randn(R, n, d), torch.randn(R, nt, d)
    beta = torch.nn.functional.normalize(torch.randn(R, d, 1), dim=1)
    y, yt = torch.relu(torch.bmm(x, beta)), torch.relu(torch.bmm(xt, beta))
    V = torch.nn.functional.normalize(torch.randn(R, d, m1), dim=1)
    W0 = torch.randn(R, m1, m2)
    a0 = (torch.randint(0, 2, (R, m2, 1)) * 2 - 1).float()
    b0, b2 = torch.randn(R, 1, m2), torch.randn(R, 1, m2)

    def test_loss(W, b, a):
        S = torch.relu(torch.bmm(torch.relu(torch.bmm(xt, V)) / math.sqrt(m1), W) + b)
        return ((torch.bmm(S, a) / m2 - yt) ** 2).mean(dim=(1, 2))

    t0 = time.perf_counter()
    init_loss = test_loss(W0, b0, a0)
    phi = torch.relu(torch.bmm(x, V)) / math.sqrt(m1)
    h = n // 2
    p1, y1 = phi[:, :h], y[:, :h]
    f0 = torch.bmm(torch.relu(b0), a0) / m2 + y1.mean(1, keepdim=True)  # centred labels
    stage1_loss = ((f0 - y1) ** 2).mean(dim=(1, 2))
    v = torch.bmm(p1.transpose(1, 2), 2 * (f0 - y1) / h)  # [R, m1, 1]
    c = a0.transpose(1, 2) * (b0 > 0).float() / m2  # [R, 1, m2]
    ms = (c ** 2).mean(dim=(1, 2)) * (torch.bmm(p1, v) ** 2).mean(dim=(1, 2))
    eta = 1.0 / torch.sqrt(ms)
    cw = -eta.reshape(R, 1, 1) * c
    W = torch.bmm(v, cw)
    S = torch.relu(torch.bmm(torch.bmm(phi[:, h:], v), cw) + b2)
    A = torch.bmm(S.transpose(1, 2), S) / (h * m2) + lam * torch.eye(m2)
    coef = torch.cholesky_solve(torch.bmm(S.transpose(1, 2), y[:, h:]) / h, torch.linalg.cholesky(A))
    ridge_loss = ((torch.bmm(S, coef) / m2 - y[:, h:]) ** 2).mean(dim=(1, 2))
    final_loss = test_loss(W, b2, coef)
    torch.stack([init_loss, stage1_loss, eta, ridge_loss, final_loss]).sum().item()
    return time.perf_counter() - t0


CASES = {"staircase_resnet": StaircaseResNet, "rhm_cnn": RhmCnn, "rhm_fcn": RhmFcn,
         "linear_teacher": LinearTeacher, "taylor_quadntk": TaylorQuad, "three_layer_algorithm1": None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--min-seconds", type=float, default=0.0,
                    help="a case timed as whole runs: more runs until their time reaches this")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    torch.set_default_device(a.device) if hasattr(torch, "set_default_device") else None
    R = a.replicas
    if CASES[a.case] is None:
        three_layer_run(R, a)  # warm-up
        runs, t = 0, 0.0
        while runs < max(1, min(a.steps, 5)) or (t < a.min_seconds and runs < 1000):
            t += three_layer_run(R, a)
            runs += 1
        rate, unit = runs / t, "run"
    else:
        c = CASES[a.case](R, a)
        x, y = c.data(R, c.P)
        opt = torch.optim.SGD(c.params, lr=c.lr)
        sync = torch.cuda.synchronize if a.device != "cpu" else (lambda: None)
        t, done = 0.0, 0
        for step in range(a.steps + 10):  # the first 10 steps warm up, untimed
            if step == 10:
                sync()
                t0 = time.perf_counter()
            i = (step * c.batch) % c.P
            f = c.forward(x[:, i:i + c.batch])
            loss = c.loss(f, y[:, i:i + c.batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sync()
        t = time.perf_counter() - t0
        rate, unit = a.steps / t, "step"
    print(json.dumps({"implementation": "pytorch " + torch.__version__, "case": a.case,
                      "device": a.device, "threads": a.threads, "replicas": R, "unit": unit,
                      "per_s": rate, "replica_per_s": rate * R, "timed_s": t}))


if __name__ == "__main__":
    main()
