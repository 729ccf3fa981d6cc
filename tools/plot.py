#!/usr/bin/env python3
"""hiercl plot DIR: learning curves of a run directory, or sample-complexity
curves of a sweep directory, as SVG and PNG (matplotlib).

Run directory (metrics.jsonl): learning_curves.{svg,png} with the train and
test loss (and test error) over steps, one line per replica, and a second
panel with the probes (e.g. the Fourier coefficients of the staircase).
Sweep directory (sweep.jsonl): sample_complexity.{svg,png} with the metric
over the training-set size P (log scale), one line per group of the other
grid keys, mean and spread over seeds, the threshold, and P* (pstar.json).
"""
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CORE = {"step", "samples", "replica", "seed", "phase", "lr", "wall_s"}
LOSSES = ("train_loss", "test_loss", "test_error")


def natural(name):
    """fourier_1to3 before fourier_1to10: compare the digits as numbers."""
    import re
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def save(fig, d, stem):
    out = []
    for ext in ("svg", "png"):
        p = os.path.join(d, stem + "." + ext)
        fig.savefig(p, dpi=120, bbox_inches="tight")
        out.append(p)
    plt.close(fig)
    return out


def plot_run(d):
    rows = read_jsonl(os.path.join(d, "metrics.jsonl"))
    if not rows:
        sys.exit("hiercl plot: %s/metrics.jsonl has no evaluations yet" % d)
    probes = sorted({k for r in rows for k in r if k not in CORE and k not in LOSSES}, key=natural)
    fig, axes = plt.subplots(1, 2 if probes else 1, figsize=(12 if probes else 6, 4.2), squeeze=False)
    ax = axes[0][0]
    for rep in sorted({r["replica"] for r in rows}):
        rr = [r for r in rows if r["replica"] == rep]
        for k, style in zip(LOSSES, ("-", "--", ":")):
            pts = [(r["step"], r[k]) for r in rr if r.get(k) is not None and r[k] > 0]
            if pts:
                ax.plot(*zip(*pts), style, label="%s (seed %s)" % (k, rr[0]["seed"]))
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.set_title("loss")
    ax.legend(fontsize=7)
    if probes:
        ax = axes[0][1]
        rep0 = [r for r in rows if r["replica"] == rows[0]["replica"]]
        for k in probes:
            pts = [(r["step"], r[k]) for r in rep0 if r.get(k) is not None]
            if pts:
                ax.plot(*zip(*pts), label=k)
        ax.set_xlabel("step")
        ax.set_title("probes (seed %s)" % rep0[0]["seed"])
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle(os.path.basename(os.path.normpath(d)))
    return save(fig, d, "learning_curves")


def plot_sweep(d):
    rows = [r for r in read_jsonl(os.path.join(d, "sweep.jsonl")) if r.get("status") == "completed"]
    if not rows:
        sys.exit("hiercl plot: %s/sweep.jsonl has no completed runs yet" % d)
    pstar = {}
    metric, thr = None, None
    pj = os.path.join(d, "pstar.json")
    if os.path.exists(pj):
        with open(pj) as f:
            ps = json.load(f)
        metric, thr = ps.get("metric"), ps.get("threshold")
        pstar = {g["group"]: g for g in ps.get("groups", [])}
    if metric is None:
        metric = "test_error" if rows[0].get("task") in ("classes", "binary") else "test_loss"
    if not rows[0]["point"]:
        # one point (only seeds, or selected candidates): no curve over a key,
        # so the learning curves of the runs it trained
        dirs = sorted({r["run_dir"] for r in rows if os.path.isdir(r.get("run_dir") or "")})
        if not dirs:
            sys.exit("hiercl plot: %s has one point and none of its run directories" % d)
        return [p for rd in dirs for p in plot_run(rd)]
    xkey = "train.train_size" if "train.train_size" in rows[0]["point"] else sorted(rows[0]["point"])[0]
    groups = {}
    for r in rows:
        g = ";".join("%s=%s" % (k, v) for k, v in r["point"].items() if k != xkey)
        x = float(r["point"][xkey])
        groups.setdefault(g, {}).setdefault(x, []).append(r.get(metric))
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for g, pts in sorted(groups.items()):
        xs = sorted(pts)
        vals = [[v for v in pts[x] if v is not None] for x in xs]
        mean = [sum(v) / len(v) if v else math.nan for v in vals]
        sd = [math.sqrt(sum((a - m) ** 2 for a in v) / (len(v) - 1)) if len(v) > 1 else 0
              for v, m in zip(vals, mean)]
        line = ax.errorbar(xs, mean, yerr=sd, marker="o", capsize=3, label=g or "all")
        p = pstar.get(g)
        if p and p.get("pstar") is not None:
            ax.axvline(p["pstar"], color=line[0].get_color(), ls=":", lw=1)
    if thr is not None:
        ax.axhline(thr, color="gray", ls="--", lw=1, label="threshold %.3g" % thr)
    ax.set_xscale("log")
    ax.set_xlabel(xkey)
    ax.set_ylabel(metric + " (mean ± sd over seeds)")
    ax.set_title(os.path.basename(os.path.normpath(d)))
    ax.legend(fontsize=7)
    out = save(fig, d, "sample_complexity")
    if os.path.exists(pj) and ps.get("exponents"):
        out += plot_exponents(d, ps)
    return out


def plot_exponents(d, ps):
    """P* against the dimension on log-log axes, one line per learner (group of
    the other keys), with the fitted power law and its bootstrap interval."""
    if not any(p["pstar"] is not None for e in ps["exponents"] for p in e["points"]):
        return []  # no P* reached anywhere: nothing to draw
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    dim = ps["exponents"][0]["dim"]
    for e in ps["exponents"]:
        pts = [(p["d"], p["pstar"]) for p in e["points"] if p["pstar"] is not None]
        if not pts:
            continue
        k, lo, hi = e.get("k"), *(e.get("k_interval") or [None, None])
        label = e["group"] or "all"
        if k is not None:
            label += "  k = %.2f" % k + (" [%.2f, %.2f]" % (lo, hi) if lo is not None else "")
        line = ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", label=label)[0]
        if k is not None and e.get("log_c") is not None:
            ds = [p["d"] for p in e["points"]]
            ax.plot(ds, [math.exp(e["log_c"]) * x ** k for x in ds], "-", lw=1,
                    color=line.get_color())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(dim)
    ax.set_ylabel("P* (%s <= %.3g)" % (ps.get("metric"), ps.get("threshold")))
    ax.set_title(os.path.basename(os.path.normpath(d)) + ": P* ~ %s^k" % dim)
    ax.legend(fontsize=7)
    return save(fig, d, "pstar_scaling")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: hiercl plot RUN_OR_SWEEP_DIR")
    d = sys.argv[1]
    if os.path.exists(os.path.join(d, "sweep.jsonl")):
        out = plot_sweep(d)
    elif os.path.exists(os.path.join(d, "metrics.jsonl")):
        out = plot_run(d)
    else:
        sys.exit("hiercl plot: %s is neither a run directory (metrics.jsonl) nor a sweep "
                 "directory (sweep.jsonl)" % d)
    print("\n".join(out))


if __name__ == "__main__":
    main()
