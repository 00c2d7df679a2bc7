#!/usr/bin/env python3
"""Our regressor against the same model in PyTorch on scikit-learn's diabetes
table (data/diabetes.csv: ten raw features and `target`, 442 rows), as a
mean over seeds.

    python3 tools/regression_twin.py [--seeds 0 1 2 3 4] [--epochs 200] [--lr 0.01] [--bin PATH]

Ours: `backprop train --data data/diabetes.csv --target target --test-split
0.2 --model "linear(10,32),relu,linear(32,1)" --epochs E --batch-size 32
--lr LR --seed S --json --diagnostics-every 0 --quiet`, run from the
repository root; its last JSON line gives the test MAE, RMSE and R².

The PyTorch twin does the same: a seeded random 20 % test split (a numpy
Generator seeded with S, so the rows held out differ from ours: only the
means over seeds compare), features standardized with the training split's
mean and population std (std 0 -> 1), targets raw, nn.Sequential(Linear(10,32),
ReLU, Linear(32,1)) with PyTorch's default init after torch.manual_seed(S),
Adam(lr) with the default betas and eps, MSE loss, batches of 32 shuffled
each epoch by a torch.Generator seeded with S (the last partial batch kept),
then the test MAE, RMSE and R² (scikit-learn's r2_score: 1 - SS_res/SS_tot).

Seconds: ours is the whole process's wall time (start-up, reading and
training included); PyTorch's runs from reading the CSV to the test metrics
(the `import torch` before it not counted). Two threads for PyTorch.
"""
import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.path.join("data", "diabetes.csv")
MODEL = "linear(10,32),relu,linear(32,1)"
BATCH = 32


def ours(bin_path, seed, epochs, lr):
    """(mae, rmse, r2, seconds) from one `backprop train` run."""
    cmd = [bin_path, "train", "--data", DATA, "--target", "target", "--test-split", "0.2",
           "--model", MODEL, "--epochs", str(epochs), "--batch-size", str(BATCH), "--lr", str(lr),
           "--seed", str(seed), "--json", "--diagnostics-every", "0", "--quiet"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    out = json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])
    m = out["test_metrics"]
    return m["mae"], m["rmse"], m["r2"], dt


def read_table(path):
    """The features (n, 10) and targets (n,) of the CSV, float64."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], np.array(rows[1:], dtype=np.float64)
    t = header.index("target")
    return np.delete(body, t, axis=1), body[:, t]


def pytorch(seed, epochs, lr):
    """(mae, rmse, r2, seconds) from the PyTorch twin."""
    t0 = time.perf_counter()
    x, y = read_table(os.path.join(ROOT, DATA))
    # A seeded random 20 % held out.
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(0.2 * len(x)))
    te, tr = perm[:n_test], perm[n_test:]
    # Standardize with the training split's mean and population std.
    mean, std = x[tr].mean(0), x[tr].std(0, ddof=0)
    std[std == 0] = 1.0
    x = (x - mean) / std
    xtr = torch.tensor(x[tr], dtype=torch.float32)
    ytr = torch.tensor(y[tr], dtype=torch.float32).unsqueeze(1)
    xte = torch.tensor(x[te], dtype=torch.float32)
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    lossf = nn.MSELoss()
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), BATCH):  # the last partial batch kept
            idx = order[i:i + BATCH]
            opt.zero_grad(set_to_none=True)
            lossf(m(xtr[idx]), ytr[idx]).backward()
            opt.step()
    with torch.no_grad():
        pred = m(xte).squeeze(1).double().numpy()
    dt = time.perf_counter() - t0
    yte = y[te]
    err = pred - yte
    mae = float(np.abs(err).mean())
    rmse = float(math.sqrt((err ** 2).mean()))
    r2 = float(1.0 - (err ** 2).sum() / ((yte - yte.mean()) ** 2).sum())
    return mae, rmse, r2, dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "backprop"))
    a = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for s in a.seeds:
        o, t = ours(a.bin, s, a.epochs, a.lr), pytorch(s, a.epochs, a.lr)
        rows.append((s, o, t))
        print(f"seed {s}: ours R² {o[2]:.4f} in {o[3]:.2f} s; pytorch R² {t[2]:.4f} in {t[3]:.2f} s",
              file=sys.stderr)
    print(f"diabetes, {MODEL}, {a.epochs} epochs, batch {BATCH}, Adam lr {a.lr}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print("| seed | backprop MAE | RMSE | R² | s | PyTorch MAE | RMSE | R² | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for s, o, t in rows:
        print(f"| {s} | {o[0]:.2f} | {o[1]:.2f} | {o[2]:.4f} | {o[3]:.2f} "
              f"| {t[0]:.2f} | {t[1]:.2f} | {t[2]:.4f} | {t[3]:.2f} |")

    def cell(side, i, digits):
        """Mean ± sample std of one column over the seeds."""
        v = [r[side][i] for r in rows]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        return f"{statistics.fmean(v):.{digits}f} ± {sd:.{digits}f}"

    print(f"| mean ± sd | {cell(1, 0, 2)} | {cell(1, 1, 2)} | {cell(1, 2, 4)} | {cell(1, 3, 2)} "
          f"| {cell(2, 0, 2)} | {cell(2, 1, 2)} | {cell(2, 2, 4)} | {cell(2, 3, 2)} |")


if __name__ == "__main__":
    main()
