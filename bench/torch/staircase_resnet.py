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
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    xtr = (torch.randint(0, 2, (a.train_size, a.n), device=dev) * 2 - 1).float()
    ytr = target(xtr, a.k, a.function)
    xte = (torch.randint(0, 2, (a.test_size, a.n), device=dev) * 2 - 1).float()
    yte = target(xte, a.k, a.function)
    chains = torch.cumprod(xte[:, :a.k], dim=1)

    model = ReLUResNet(a.n, a.width, a.depth).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=a.lr_every, gamma=0.5)
    log = []
    t0 = time.perf_counter()
    train_s = 0.0
    for step in range(1, a.steps + 1):
        ts = time.perf_counter()
        i = ((step - 1) * a.batch) % a.train_size
        x, y = xtr[i:i + a.batch], ytr[i:i + a.batch]
        loss = ((model(x) - y) ** 2).mean()
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
                coef = (f * chains).mean(dim=0).tolist()
            log.append({"step": step, "test_loss": test, "fourier": coef})
    wall = time.perf_counter() - t0
    print(json.dumps({"implementation": "pytorch " + torch.__version__, "device": a.device,
                      "threads": a.threads, "steps": a.steps, "wall_s": wall,
                      "train_steps_per_s": a.steps / train_s, "final": log[-1] if log else None}))


if __name__ == "__main__":
    main()
