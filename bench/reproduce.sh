#!/bin/sh
# Run every headline claim's config on one device, collect the run and sweep
# directories under OUT (default results/), and write OUT/claims.json: per
# claim, the paper's statement, the measured value (read from the run's
# summary.json or the sweep's pstar.json / table.tsv), the band that counts
# as reproducing it, and pass or fail.
#
# Usage: bench/reproduce.sh [--quick] [DEVICE] [OUT]
#   full size (default; for a GPU): the configs as written.
#   --quick: every claim scaled down (fewer seeds, smaller grids, fewer steps)
#   to run on a 2-core CPU in under 30 minutes in all; its verdicts are those
#   of the small instance, not of the paper's protocol.
# ONLY="claim ..." runs a subset (claim names: see the list below); LIMIT
# bounds each command in seconds (default 3600, 600 with --quick); PARTS=N
# trains the sweeps of many small runs (the three-layer and neural-
# representation claims) on DEVICE/N, N parts of the device side by side
# (on a CPU: faster, the same records; see docs/results.md §3). An
# interrupted sweep resumes when the script runs again (same OUT). Every
# claim's directories are plotted (`hiercl plot`: PNG and SVG in each; their
# paths under "plots" in claims.json); docs/results.md has the last full pass.
set -u
quick=0
if [ "${1:-}" = "--quick" ]; then
  quick=1
  shift
fi
dev=${1:-gpu}
out=${2:-results}
if [ $quick = 1 ]; then limit=${LIMIT:-600}; else limit=${LIMIT:-3600}; fi
hiercl=${HIERCL:-./build/hiercl}
mkdir -p "$out"
: > "$out/claims.tsv"

claims="staircase_resnet parity_resnet staircase_biased_resnet staircase_gaussian_resnet
multi_staircase_resnet staircase_regular_scd rhm_cnn rhm_cnn_l3 rhm_fcn rhm_ridge_chain
three_layer_single_index three_layer_quadratic neural_rep linear_teacher linear_teacher_sgd"

# q ARGS...: the arguments only in quick mode
q() { if [ $quick = 1 ]; then echo "$@"; fi; }
# quick RHM nets: width 64, lr 4 (times H: at the reference's 0.1 H the
# mean-field nets stay on their initial plateau for thousands of steps), at
# most 3 000 steps, no sensitivity probe, 2 seeds
rhmq="--set model.width=64 --set train.lr=4 --set train.steps=3000 --set target.probe_samples=0 --grid run.seed=0..1"

# run NAME CONFIG ARGS...: one run; its directory goes to OUT/NAME.dir
run() {
  n=$1 c=$2
  shift 2
  start=$(date +%s)
  timeout "$limit" "$hiercl" run "configs/$c.ini" --device "$dev" --out "$out" -q "$@" \
    > "$out/$n.dir" 2> "$out/$n.log"
  echo "$n: exit $? in $(( $(date +%s) - start )) s" | tee -a "$out/times.txt"
}

# sweep NAME CONFIG ARGS...: one sweep; its directory goes to OUT/NAME.dir
sweep() {
  n=$1 c=$2
  shift 2
  start=$(date +%s)
  sdev=$dev
  case "$n" in three_layer* | neural_rep*) [ "${PARTS:-1}" -gt 1 ] && sdev="$dev/$PARTS" ;; esac
  timeout "$limit" "$hiercl" sweep "configs/$c.ini" --device "$sdev" --out "$out" "$@" \
    > "$out/$n.table.txt" 2> "$out/$n.log"
  rc=$?
  # the directory the sweep printed last, else the newest of this config (a
  # failed sweep prints none)
  d=$(tail -n 1 "$out/$n.table.txt")
  if [ -d "$d" ]; then echo "$d" > "$out/$n.dir"; else
    ls -dt "$out/sweep_${c}_"???????? 2>/dev/null | head -n 1 > "$out/$n.dir"; fi
  echo "$n: exit $rc in $(( $(date +%s) - start )) s" | tee -a "$out/times.txt"
}

# claim NAME: run the claim's configs (at the chosen size) and append one
# line "NAME<TAB>dir..." to claims.tsv for the judge below
claim() {
  case $1 in
    staircase_resnet | parity_resnet)
      # quick: S_10 needs the whole 100 000 steps; only the evaluations are fewer
      run "$1" "$1" $(q --set eval.every=log:10 --set eval.test_size=10000 --set target.probe_samples=10000) ;;
    staircase_biased_resnet | staircase_gaussian_resnet | multi_staircase_resnet)
      # the authors' scripts' protocols; full: seeds 0-4 as replicas; quick:
      # seeds 0-1 (every step of the protocol: the ResNet is fast), fewer
      # evaluations and probe points, except the multi-staircase's full 30 000
      # probe points (at 10 000 the probe's error, about sqrt(13/10 000) = 0.036
      # per coefficient, put one at 0.861 where the network's is 0.958)
      pq=10000
      [ "$1" = multi_staircase_resnet ] && pq=30000
      run "$1" "$1" $([ $quick = 1 ] && echo --replicas 2 --set eval.every=log:30 \
        --set eval.test_size=10000 --set target.probe_samples=$pq || echo --replicas 5) ;;
    staircase_regular_scd)
      # lr and the passes over each layer selected on a validation stream,
      # per seed; full: seeds 0-3; quick: seeds 0-1
      sweep "$1" "$1" --grid run.seed=0..$([ $quick = 1 ] && echo 1 || echo 3) \
        --select train.lr=0.01,0.015,0.02,0.03 --select model.layer_passes=1,3 --set eval.val_size=5000 ;;
    rhm_cnn)
      sweep rhm_cnn rhm_cnn_reference \
        $(q --grid "train.train_size=geom(128,3584,5)" $rhmq) ;;
    rhm_cnn_l3)
      sweep rhm_cnn_l3 rhm_cnn_l3_reference \
        $(q --grid "train.train_size=geom(128,4096,6)" $rhmq) ;;
    rhm_fcn)
      sweep rhm_fcn_m4 rhm_fcn_mf_m4 $(q $rhmq)
      sweep rhm_fcn_m8 rhm_fcn_mf_m8 $(q --grid "train.train_size=geom(64,3584,5)" $rhmq) ;;
    rhm_ridge_chain)
      sweep "$1" "$1" $(q --grid run.seed=0..1) ;;
    three_layer_single_index | three_layer_quadratic)
      # quick: d = 4, 5, 6, 8 (m1 = 8 d^2 = 128 .. 512), P = 16, 32, 64, 128, 512,
      # 2 048 (4 d at d = 4 to 32 d^2 at d = 8: the kernels and random features
      # reach the threshold below P = 128, so the grid starts at 16 for every
      # learner to give each its P*(d); single index from P = 8: at d = 4 the
      # kernels are below its threshold at P = 16), 5 seeds (the paper's), 2 x 2 candidates
      # (eta1_scale x lambda) for the learners with a first step, 2 (lambda) x 2
      # (phi or raw x) for random features, 2 (lambda) x 2 (NTK or NNGP) for the
      # kernel limit, smaller validation/test/probe sets (the runs, ~1.5 s each on
      # 2 cores, set the time); quadratic features: P* at test MSE 0.5 (the full
      # threshold 0.3 is not reached at d >= 6 within 4 096 samples)
      tp=16,32,64,128,512,2048
      [ "$1" = three_layer_single_index ] && tp=8,$tp
      tq="--grid train.train_size=$tp --grid target.d=4,5,6,8 --grid run.seed=0..4
          --set eval.val_size=1000 --set eval.test_size=2000 --select model.lambda=1e-4,1e-2"
      [ "$1" = three_layer_quadratic ] && tq="$tq --set sweep.threshold=0.5"
      for v in "" _rf _2l; do
        sweep "$1$v" "$1$v" $(q $tq --set model.probe_samples=1000) \
          $(q $([ "$v" = _rf ] || echo --select model.eta1_scale=1,2))
      done
      # the kernel limit (exact kernel ridge, NTK and NNGP): the same quick
      # grid and lambda candidates; full size: P up to 8 192 (the solver's limit)
      sweep "$1_kr" "$1_kr" $(q $tq) ;;
    neural_rep)
      # one sweep: representation x order x d x P, the ||W||_{2,4}^8 penalty
      # selected for every learner; quick: lr 15 alone (chosen at 126 of 144
      # points from {5, 15}), so the two penalty candidates cost what the two
      # lr candidates did
      sweep neural_rep neural_rep_taylor \
        $(q --grid "train.train_size=geom(64,2048,6)" --grid target.d=6,9,12 --grid run.seed=0..1 \
            --set train.steps=200 --set model.width=96 --set eval.every=200 \
            --select train.lr=15 --select model.penalty_24=0,1e-9) ;;
    linear_teacher)
      # seeds 0-2 as replicas; the earlier margin 0.1 beside it (reported, not judged)
      run "$1" "$1" --replicas 3
      run linear_teacher_m01 linear_teacher --replicas 3 --set target.margin=0.1 ;;
    linear_teacher_sgd)
      # mini-batch SGD, lr selected per seed on validation (the config's
      # [select]), seeds 0-2; margin 0.1 beside it (reported, not judged);
      # quick: 2 000 test, validation and probe points
      lq="--set eval.test_size=2000 --set eval.val_size=2000 --set target.probe_samples=2000"
      sweep "$1" "$1" $(q $lq)
      sweep linear_teacher_sgd_m01 "$1" --set target.margin=0.1 $(q $lq) ;;
  esac
  case $1 in
    rhm_fcn) dirs="$(cat "$out/rhm_fcn_m4.dir") $(cat "$out/rhm_fcn_m8.dir")" ;;
    three_layer_*) dirs="$(cat "$out/$1.dir") $(cat "$out/$1_rf.dir") $(cat "$out/$1_2l.dir") $(cat "$out/$1_kr.dir")" ;;
    linear_teacher) dirs="$(cat "$out/linear_teacher.dir") $(cat "$out/linear_teacher_m01.dir")" ;;
    linear_teacher_sgd) dirs="$(cat "$out/$1.dir") $(cat "$out/linear_teacher_sgd_m01.dir")" ;;
    *) dirs=$(cat "$out/$1.dir") ;;
  esac
  printf '%s\t%s\n' "$1" "$dirs" >> "$out/claims.tsv"
  # each directory's plot (SVG and PNG beside its files); a plot that cannot
  # be drawn is noted, and changes no verdict
  for d in $dirs; do
    "$hiercl" plot "$d" >> "$out/plots.log" 2>&1 || echo "$1: no plot of $d (see plots.log)" | tee -a "$out/times.txt"
  done
}

for c in ${ONLY:-$claims}; do claim "$c"; done

# Judge every claim from its directories' files: OUT/claims.json
python3 - "$out/claims.tsv" "$out/claims.json" "$quick" "$dev" <<'EOF'
import csv, json, math, os, sys

tsv, dst, quick, dev = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]

def load(path):
    with open(path) as f:
        return json.load(f)

def final(d):
    """The first replica's final metrics and every replica's, from summary.json."""
    s = load(os.path.join(d, "summary.json"))
    if s.get("status") != "completed":
        raise ValueError("%s: status %s" % (d, s.get("status")))
    return s["replicas"]

def records(d):
    """A sweep's records (sweep.jsonl), one per point and seed; each must be completed."""
    out = []
    with open(os.path.join(d, "sweep.jsonl")) as f:
        for line in f:
            j = json.loads(line)
            if j.get("status") != "completed":
                raise ValueError("%s: seed %s: status %s" % (d, j.get("seed"), j.get("status")))
            out.append(j)
    if not out:
        raise ValueError("%s: no records" % d)
    return out

def pstar(d):
    """{group: P* or None (not reached)} from pstar.json."""
    return {g["group"]: g.get("pstar") for g in load(os.path.join(d, "pstar.json"))["groups"]}

def pstar_per_seed(d, group=""):
    """Each seed's own P* of one group (pstar.json's per_seed): {seed: P*, or
    "<= P" (below the threshold at the smallest P) or "> P" (never reached)}."""
    def one(s):
        lo, hi = s["bracket"]
        return s["pstar"] if s["pstar"] is not None else "<= %g" % hi if hi is not None else "> %g" % lo
    for g in load(os.path.join(d, "pstar.json"))["groups"]:
        if g["group"] == group:
            return {str(s["seed"]): one(s) for s in g.get("per_seed", [])}
    return {}

def exponents(d):
    return {e["group"]: e for e in load(os.path.join(d, "pstar.json")).get("exponents", [])}

def table(d):
    with open(os.path.join(d, "table.tsv")) as f:
        return list(csv.DictReader(f, delimiter="\t"))

def at_largest_p(d, metric="test_loss_mean", split=None):
    """{(d, group): metric at the largest train_size} of a sweep's table."""
    rows = table(d)
    best = {}
    for r in rows:
        key = (r.get("target.d"), r.get(split) if split else None)
        p = float(r["train.train_size"])
        if r.get(metric) in (None, "", "nan"):
            continue
        if key not in best or p > best[key][0]:
            best[key] = (p, float(r[metric]))
    return {k: v[1] for k, v in best.items()}

def within(x, lo, hi):
    return x is not None and lo <= x <= hi

def judge(name, dirs):
    c = {"claim": name, "dirs": dirs}
    if name in ("staircase_resnet", "parity_resnet", "staircase_regular_scd"):
        reps = final(dirs[0]) if name != "staircase_regular_scd" else records(dirs[0])
        k = {"staircase_resnet": 10, "parity_resnet": 10, "staircase_regular_scd": 3}[name]
        exact = 1 / math.sqrt(k)
        if name == "parity_resnet":
            c["paper"] = "Abbe et al. 2021: the parity chi_{1..10} is not learned by the same ResNet"
            c["measured"] = {"test_loss": [r["test_loss"] for r in reps],
                             "fourier_1to10": [r.get("fourier_1to10") for r in reps]}
            c["band"] = "test MSE >= 0.9 and |fourier_1to10| <= 0.05"
            c["pass"] = all(r["test_loss"] >= 0.9 and abs(r.get("fourier_1to10", 1)) <= 0.05 for r in reps)
            return c
        keys = ["fourier_1"] + ["fourier_1_2"] + ["fourier_1to%d" % j for j in range(3, k + 1)]
        c["paper"] = ("Abbe et al. 2021: S_%d is learned (test MSE near 0), every chain "
                      "coefficient -> 1/sqrt(%d) = %.3f" % (k, k, exact))
        c["measured"] = [{"seed": r["seed"], "test_loss": r["test_loss"],
                          **{q: r.get(q) for q in keys},
                          **({"selected": r["selected"]} if "selected" in r else {})} for r in reps]
        c["band"] = "test MSE < 0.05 and every coefficient within 10 %% of %.4f" % exact
        c["pass"] = all(r["test_loss"] < 0.05 and
                        all(r.get(q) is not None and abs(r[q] - exact) <= 0.1 * exact for q in keys)
                        for r in reps)
    elif name in ("staircase_biased_resnet", "staircase_gaussian_resnet", "multi_staircase_resnet"):
        reps = final(dirs[0])
        multi = name == "multi_staircase_resnet"
        def idx(key):  # fourier_1_2, fourier_1to5, fourier_1_8to9 -> frozenset of indices
            out = set()
            for part in key[len("fourier_"):].split("_"):
                a, _, b = part.partition("to")
                out.update(range(int(a), int(b or a) + 1))
            return frozenset(out)
        keys = sorted((q for q in reps[0] if q.startswith("fourier_") and q != "fourier_0"), key=lambda q: len(idx(q)))
        # exact coefficients: 1/sqrt(k) (normalised staircase) or 1 (multi-staircase, not normalised)
        k = len(keys) if not multi else None
        exact = 1.0 if multi else 1 / math.sqrt(k)
        var = len(keys) * exact * exact
        # when each coefficient first reaches half its exact value, per replica
        rise = {}
        with open(os.path.join(dirs[0], "metrics.jsonl")) as f:
            for line in f:
                m = json.loads(line)
                for q in keys:
                    v = m.get(q)
                    if v is not None and v >= exact / 2 and (m["replica"], q) not in rise:
                        rise[(m["replica"], q)] = m["step"]
        def ordered(r):
            # a set is not learned before any of its subsets (the staircase order)
            t = {q: rise.get((r, q), math.inf) for q in keys}
            return all(t[a] <= t[b] for a in keys for b in keys if idx(a) < idx(b))
        c["paper"] = ("Abbe et al. 2021 (%s): learned, each coefficient rising in order of degree"
                      % {"staircase_biased_resnet": "biased inputs, S_7",
                         "staircase_gaussian_resnet": "Gaussian inputs, S_5",
                         "multi_staircase_resnet": "multi-staircase 7 + 7"}[name])
        c["measured"] = [{"seed": r["seed"], "test_loss": r["test_loss"],
                          "coefficients": {q: r.get(q) for q in keys},
                          "half_rise_step": {q: rise.get((i, q)) for q in keys},
                          "in_order": ordered(i)} for i, r in enumerate(reps)]
        # every coefficient within 10 %: measured by the probe, or certified by
        # the test MSE (the monomials are orthonormal under the input law, so
        # each coefficient's error is at most sqrt(MSE)); on biased and Gaussian
        # inputs the probe's own error is large (E chi_S^4 grows like 2.3^|S|
        # and 3^|S|: about 0.08 at |S| = 5 from 10 000 probe points)
        def coefs_ok(r):
            return (math.sqrt(r["test_loss"]) <= 0.1 * exact or
                    all(r.get(q) is not None and abs(r[q] - exact) <= 0.1 * exact for q in keys))
        for m, r in zip(c["measured"], reps):
            m["coefficient_error_bound_sqrt_mse"] = math.sqrt(r["test_loss"])
        c["band"] = ("test MSE < 0.05 x Var f* (%.3g); every coefficient within 10 %% of %.4f (probe, or "
                     "sqrt(test MSE) <= %.4f); no coefficient reaches half its value before one of its "
                     "subsets" % (0.05 * var, exact, 0.1 * exact))
        c["pass"] = all(r["test_loss"] < 0.05 * var and coefs_ok(r) and ordered(i)
                        for i, r in enumerate(reps))
    elif name in ("rhm_cnn", "rhm_cnn_l3", "rhm_ridge_chain"):
        ps = pstar(dirs[0]).get("")
        ref = 512  # n_c m^L: 8 * 8^2 (L = 2) and 8 * 4^3 (L = 3)
        c["paper"] = ("Cagnetta et al. 2024: a deep CNN reaches test error <= eps_rand/10 at "
                      "P* ~ n_c m^L = 512" if name != "rhm_ridge_chain" else
                      "Ren et al. 2026: the layer-wise ridge chain learns the RHM with a sample "
                      "count comparable to the deep CNN's P* ~ n_c m^L = 512")
        c["measured"] = {"pstar": ps, "pstar_over_nc_m_L": ps / ref if ps else None,
                         "pstar_per_seed": pstar_per_seed(dirs[0])}
        c["band"] = "0.25 <= P*/512 <= 4"
        c["pass"] = within(ps and ps / ref, 0.25, 4)
    elif name == "rhm_fcn":
        pm = {"m=4": 512, "m=8": 4096}
        got = {}
        for g, d in zip(pm, dirs):
            ps = pstar(d).get("")
            got[g] = {"pstar": ps, "pstar_per_seed": pstar_per_seed(d), "P_max": pm[g],
                      "largest_P": max(float(r["train.train_size"]) for r in table(d)),
                      "pstar_over_P_max": ps / pm[g] if ps else None}
        c["paper"] = ("Cagnetta et al. 2024: a shallow fully connected net needs P proportional to "
                      "P_max (two grammars, n_c = v = 8, L = 2, m = 4 and 8)")
        c["measured"] = got
        c["band"] = "on both grammars P* >= P_max/4, or eps_rand/10 not reached up to P_max - test_size"
        c["pass"] = all(v["pstar"] is None or v["pstar"] >= v["P_max"] / 4 for v in got.values())
    elif name.startswith("three_layer_"):
        # The paper's claims are sample-complexity rates in d, so the band is
        # on the exponents k of P* ~ d^k (pstar.json, one per learner and
        # variant): Algorithm 1 reaches the threshold at every d, and its k is
        # below every baseline's; a baseline that misses the threshold at a d
        # where Algorithm 1 reaches it counts as slower there. The test MSE at
        # the largest P is reported beside it.
        single = name == "three_layer_single_index"
        # learner, its sweep's split key (None: one group) and the names of its groups
        lbls = ("algorithm1", "random_features", "two_layer", "kernel_limit")
        splits = (None, "model.two_layer", None, "model.kernel")
        names = {"model.two_layer=false": "depth-2 phi", "model.two_layer=true": "raw x",
                 "model.kernel=ntk": "NTK", "model.kernel=nngp": "NNGP"}
        def variant(split, value):
            return "" if split is None else names.get("%s=%s" % (split, value), value)
        def fits(d):
            return {g: e for g, e in exponents(d).items()}
        ex = {}
        for lbl, d in zip(lbls, dirs):
            for g, e in fits(d).items():
                g = names.get(g, g)
                ex[(lbl + " " + g).strip()] = {
                    "k": e.get("k"), "k_interval": e.get("k_interval"),
                    "pstar": {str(int(q["d"])): q.get("pstar") for q in e.get("points", [])}}
        thr = load(os.path.join(dirs[0], "pstar.json")).get("threshold")
        # where P* is missing, whether the seed-mean curve was below the
        # threshold already at the smallest P ("below") or never ("never")
        def censored(d, split=None):
            rows = table(d)
            out = {}
            for r in rows:
                key = (r.get(split) if split else None, r["target.d"])
                out.setdefault(key, []).append((float(r["train.train_size"]), float(r["test_loss_mean"])))
            res = {}
            for (g, dd), pts in out.items():
                pts.sort()
                res.setdefault(variant(split, g), {})[dd] = (
                    "below" if pts[0][1] <= thr else
                    "never" if all(v > thr for _, v in pts) else "reached")
            return res
        cens = {}
        for lbl, d, split in zip(lbls, dirs, splits):
            for g, m in censored(d, split).items():
                cens[(lbl + " " + g).strip()] = m
        for k in ex:
            for dd, st in cens.get(k, {}).items():
                if st != "reached":
                    ex[k]["pstar"][dd] = "< smallest P" if st == "below" else "> largest P"
        alg = ex.get("algorithm1")
        # the single-index claim is against kernels (random features and the
        # kernel limit); the quadratic one against every two-layer baseline
        base = {k: v for k, v in ex.items() if not k.startswith("algorithm1")
                and (not single or not k.startswith("two_layer"))}
        def status(k):
            return cens.get(k, {})
        verdicts = {}
        a_ok = alg is not None and all(v == "reached" for v in status("algorithm1").values())
        for k, b in base.items():
            bs = status(k)
            if not a_ok:
                verdicts[k] = False   # Algorithm 1 has no P* at some d: its exponent is unknown
            elif any(v == "never" for v in bs.values()):
                verdicts[k] = True    # the baseline misses the threshold where Algorithm 1 reaches it
            else:                     # both fitted, or the baseline already below at the smallest P:
                # the rates must be resolved, not only the point estimates in order
                ai, bi = alg.get("k_interval"), b.get("k_interval")
                verdicts[k] = (all(v == "reached" for v in bs.values()) and ai is not None
                               and bi is not None and ai[1] < bi[0])
        c["paper"] = ("Nichani, Damian, Lee 2023: " + (
            "a single-index target is learned by Algorithm 1 with ~d samples (v3: n = Theta~(d)); "
            "kernels / random features need more (their rate in d is higher)" if single else
            "g*(x^T A x) is learned by Algorithm 1 with Theta~(d^4) samples (v1; v3 improves it), "
            "independent of deg g* = p; kernels / two-layer nets need d^(2p) = d^6 for p = 3"))
        def spread(d, split=None):
            """{"d[ split=variant]": [median, min, max]} of the seeds' test MSE at the largest P."""
            per = {}
            with open(os.path.join(d, "sweep.jsonl")) as f:
                for line in f:
                    j = json.loads(line)
                    if j.get("test_loss") is None:
                        continue
                    pt = j["point"]
                    key = pt["target.d"] + ("" if not split else " %s=%s" % (split.split(".")[-1], pt[split]))
                    per.setdefault(key, {}).setdefault(float(pt["train.train_size"]), []).append(j["test_loss"])
            out = {}
            for key, byp in per.items():
                v = sorted(byp[max(byp)])
                n = len(v)
                med = v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])
                out[key] = [med, v[0], v[-1]]
            return out
        c["measured_median_min_max_at_largest_P"] = {
            lbl: spread(d, split) for lbl, d, split in zip(lbls, dirs, splits)}
        largest = {}
        for lbl, d, split in zip(lbls, dirs, splits):
            largest[lbl] = {(dd if split is None else "%s %s=%s" % (dd, split.split(".")[-1], g)): v
                            for (dd, g), v in at_largest_p(d, split=split).items()}
        c["measured"] = {"threshold_test_mse": thr,
                         "pstar_exponents": ex,
                         "test_loss_at_largest_P": largest,
                         "algorithm1_exponent_below": verdicts}
        c["band"] = ("Algorithm 1 reaches test MSE %s at every d, and the 95 %% bootstrap interval "
                     "of its exponent k of P* ~ d^k lies below that of every %s (a baseline that "
                     "never reaches it at some d counts as slower)"
                     % (thr, "kernel (random features on raw x and on phi, the NTK and NNGP kernel "
                        "limits)" if single else
                        "baseline (random features on raw x and on phi, the NTK and NNGP kernel limits, "
                        "trained two-layer net)"))
        c["pass"] = bool(verdicts) and all(verdicts.values())
    elif name == "neural_rep":
        ex = exponents(dirs[0])
        def k(rep, order):
            for g, e in ex.items():
                kv = dict(x.split("=", 1) for x in g.split(";") if "=" in x)
                if kv.get("model.representation") == rep and int(kv.get("model.order", 2)) == order:
                    return e
            return {}
        ks = {"%s %s" % (rep, "QuadNTK" if o == 2 else "NTK"):
              {"k": k(rep, o).get("k"), "k_interval": k(rep, o).get("k_interval"),
               "pstar": k(rep, o).get("pstar")}
              for rep in ("raw", "neural") for o in (1, 2)}
        c["paper"] = ("Chen et al. 2020: QuadNTK on a neural representation needs ~d^ceil(p/2) = d^2 "
                      "samples, on the raw input ~d^(p-1) = d^3 (p = 4); the NTK gains nothing")
        c["measured"] = {"exponents": ks, "pstar": pstar(dirs[0])}
        def diff(a, b):
            ka, kb = ks[a]["k"], ks[b]["k"]
            return ka - kb if ka is not None and kb is not None else None
        dq, dn = diff("raw QuadNTK", "neural QuadNTK"), diff("raw NTK", "neural NTK")
        c["measured"]["k_raw_minus_k_neural"] = {"QuadNTK": dq, "NTK": dn}
        c["band"] = ("k(QuadNTK, raw) - k(QuadNTK, neural) >= 0.5 and "
                     "k(NTK, raw) - k(NTK, neural) <= 0.5")
        c["pass"] = dq is not None and dq >= 0.5 and dn is not None and dn <= 0.5
    elif name == "linear_teacher":
        keys = ("train_loss", "test_error", "cluster_cos", "clusters", "direction_cos",
                "linear_agreement", "teacher_agreement")
        reps = final(dirs[0])
        cert = math.log(2) / 500
        c["paper"] = ("Brutzkus et al. 2018, Sarussi et al. 2021: zero training error; the hidden weights "
                      "converge to two clusters (one per readout sign) and the classifier is linear")
        c["measured"] = [{"seed": r["seed"], **{q: r.get(q) for q in keys}} for r in reps]
        if len(dirs) > 1:  # the earlier margin, beside the claim
            c["measured_margin_0.1"] = [{"seed": r["seed"], **{q: r.get(q) for q in keys}}
                                        for r in final(dirs[1])]
        c["band"] = ("every seed: train_loss < log(2)/500 = %.5f (zero training error), clusters = 2 "
                     "(cosine >= 0.99 within a cluster), linear_agreement >= 0.95" % cert)
        c["pass"] = all(r["train_loss"] < cert and r.get("clusters") == 2 and
                        r["linear_agreement"] >= 0.95 for r in reps)
    elif name == "linear_teacher_sgd":
        keys = ("train_set_error", "train_set_loss", "test_error", "val_loss", "cluster_cos",
                "clusters", "direction_cos", "linear_agreement", "teacher_agreement")
        def trajectory(r):
            """The selected candidate's clustering over training, from its run's metrics."""
            out = {}
            with open(os.path.join(r["run_dir"], "metrics.jsonl")) as f:
                for line in f:
                    m = json.loads(line)
                    if m.get("seed") == r["seed"] and m.get("replica_lr") == r["replica_lr"]:
                        out[m["step"]] = (m.get("cluster_cos"), m.get("clusters"))
            steps = sorted(out)
            peak = max(steps, key=lambda s: out[s][0] or -2)
            two = [s for s in steps if out[s][1] == 2]
            # at the first evaluation from each power of 10 on, and the last
            marks = sorted({next((s for s in steps if s >= 10 ** k), steps[-1])
                            for k in range(6)} | {steps[-1]})
            return {"cluster_cos": {str(s): out[s][0] for s in marks},
                    "peak_cluster_cos": out[peak][0], "peak_step": peak,
                    "first_step_with_2_clusters": two[0] if two else None}
        def per_seed(d):
            return [{"seed": r["seed"], "selected": r.get("selected"),
                     **{q: r.get(q) for q in keys}, "over_training": trajectory(r)}
                    for r in records(d)]
        def per_lr(d):
            """Every candidate's final clusters, training error and val_loss, by lr."""
            out = {}
            with open(os.path.join(d, "candidates.jsonl")) as f:
                for line in f:
                    j = json.loads(line)
                    lr = j["point"].get("train.lr")
                    out.setdefault(lr, []).append({q: j.get(q) for q in (
                        "seed", "val_loss", "train_set_error", "clusters", "cluster_cos",
                        "linear_agreement")})
            return out
        reps = per_seed(dirs[0])
        c["paper"] = ("Brutzkus et al. 2018, Sarussi et al. 2021: SGD on the cross-entropy reaches zero "
                      "training error; the hidden weights converge to two clusters (one per readout "
                      "sign) and the classifier is linear")
        c["measured"] = reps
        c["candidates_by_lr"] = per_lr(dirs[0])
        if len(dirs) > 1:  # margin 0.1, beside the claim
            c["measured_margin_0.1"] = per_seed(dirs[1])
            c["candidates_by_lr_margin_0.1"] = per_lr(dirs[1])
        c["band"] = ("every seed, lr selected on validation: train_set_error = 0 (the whole training set "
                     "at the final weights), clusters = 2 (cosine >= 0.99 within a cluster), "
                     "linear_agreement >= 0.95")
        c["pass"] = all(r["train_set_error"] == 0 and r.get("clusters") == 2 and
                        r["linear_agreement"] >= 0.95 for r in reps)
    return c

claims = []
with open(tsv) as f:
    for line in f:
        name, _, rest = line.rstrip("\n").partition("\t")
        dirs = rest.split()
        try:
            c = judge(name, dirs)
            c["plots"] = sorted(os.path.join(w, p) for d in dirs if os.path.isdir(d)
                                for w, _, ps in os.walk(d) for p in ps if p.endswith(".png"))
            claims.append(c)
        except Exception as e:  # a run that failed or was cut: say so, count as fail
            claims.append({"claim": name, "dirs": dirs, "error": "%s: %s" % (type(e).__name__, e),
                           "pass": False})
with open(dst, "w") as f:
    json.dump({"size": "quick" if quick else "full", "device": dev, "claims": claims}, f, indent=1)
for c in claims:
    print("%-28s %s" % (c["claim"], "pass" if c["pass"] else "FAIL" + (" (%s)" % c["error"] if "error" in c else "")))
print("written:", dst)
EOF
