#!/usr/bin/env python3
"""PyTorch reference of configs/staircase_resnet.ini (and parity_resnet.ini).

The staircase paper's protocol (Abbe et al., NeurIPS 2021): ReLUResNet with
widths [n, W x (L-1), 1] and PyTorch's default initialisation, MSE loss, SGD
with lr 0.01 halved every 15 000 steps, batch 20, a fixed training set of
60 000 points cycled in order, test on 30 000 fresh points, the Fourier
coefficients of chi_{1..j} every 1 000 steps. Written as a researcher would
write it today, so that hiercl's wall time can be compared in the same call.

Prints one JSON object: wall time, steps per second (training only), final
metrics.
"""
import argparse
import json
import math
import time

import torch


class ReLUResNet(torch.nn.Module):
    def __init__(self, n, width, depth):
        super().__init__()
        self.inp = torch.nn.Linear(n, width)
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(depth - 2))
        self.out = torch.nn.Linear(width, 1)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        for b in self.blocks:
            h = torch.relu(b(h)) + h
        return self.out(h)


class BatchedResNet(torch.nn.Module):
    """R independent ReLUResNets trained in one pass (torch.bmm over replicas),
    each initialised like nn.Linear: the expert way to run R seeds in PyTorch."""

    def __init__(self, R, n, width, depth):
        super().__init__()
        def lin(i, o):
            bound = 1 / math.sqrt(i)
            w = torch.nn.Parameter(torch.empty(R, i, o).uniform_(-bound, bound))
            b = torch.nn.Parameter(torch.empty(R, 1, o).uniform_(-bound, bound))
            return w, b
        self.layers = torch.nn.ParameterList()
        for i, o in [(n, width)] + [(width, width)] * (depth - 2) + [(width, 1)]:
            self.layers.extend(lin(i, o))
        self.depth = depth

    def forward(self, x):  # x [R, B, n]
        p = list(self.layers)
        h = torch.relu(torch.baddbmm(p[1], x, p[0]))
        for l in range(1, self.depth - 1):
            h = torch.relu(torch.baddbmm(p[2 * l + 1], h, p[2 * l])) + h
        return torch.baddbmm(p[-1], h, p[-2])


def target(x, k, function):
    chain = torch.cumprod(x[:, :k], dim=1)  # chi_{1..j} for j = 1..k
    if function == "parity":
        return chain[:, k - 1:k]
    return chain.sum(dim=1, keepdim=True) / math.sqrt(k)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--function", default="staircase", choices=["staircase", "parity"])
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--width", type=int, default=40)
    ap.add_argument("--depth", type=int, default=5)
    ap.add_argument("--steps", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--lr-every", type=int, default=15000)
    ap.add_argument("--train-size", type=int, default=60000)
    ap.add_argument("--test-size", type=int, default=30000)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replicas", type=int, default=1,
                    help="R > 1: R independent networks in one pass (batched matmuls)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    xtr = (torch.randint(0, 2, (a.train_size, a.n), device=dev) * 2 - 1).float()
    ytr = target(xtr, a.k, a.function)
    xte = (torch.randint(0, 2, (a.test_size, a.n), device=dev) * 2 - 1).float()
    yte = target(xte, a.k, a.function)
    chains = torch.cumprod(xte[:, :a.k], dim=1)

    R = a.replicas
    model = (ReLUResNet(a.n, a.width, a.depth) if R == 1 else BatchedResNet(R, a.n, a.width, a.depth)).to(dev)
    if R > 1:  # every replica sees the same stream here; only the timing matters
        xtr, ytr = xtr.expand(R, -1, -1).contiguous(), ytr.expand(R, -1, -1).contiguous()
        xte, yte = xte.expand(R, -1, -1), yte.expand(R, -1, -1)
        chains = chains.expand(R, -1, -1)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=a.lr_every, gamma=0.5)
    log = []
    t0 = time.perf_counter()
    train_s = 0.0
    for step in range(1, a.steps + 1):
        ts = time.perf_counter()
        i = ((step - 1) * a.batch) % a.train_size
        x, y = (xtr[i:i + a.batch], ytr[i:i + a.batch]) if R == 1 else (xtr[:, i:i + a.batch], ytr[:, i:i + a.batch])
        loss = ((model(x) - y) ** 2).mean() * R  # mean per replica, summed
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if a.device != "cpu":
            torch.cuda.synchronize()
        train_s += time.perf_counter() - ts
        if step % a.eval_every == 0 or step == a.steps:
            with torch.no_grad():
                f = model(xte)
                test = ((f - yte) ** 2).mean().item()
                coef = (f * chains).mean(dim=-2).reshape(-1)[:a.k].tolist()
            log.append({"step": step, "test_loss": test, "fourier": coef})
    wall = time.perf_counter() - t0
    print(json.dumps({"implementation": "pytorch " + torch.__version__, "device": a.device,
                      "threads": a.threads, "replicas": R, "steps": a.steps, "wall_s": wall,
                      "train_steps_per_s": a.steps / train_s,
                      "replica_steps_per_s": R * a.steps / train_s, "final": log[-1] if log else None}))


if __name__ == "__main__":
    main()
