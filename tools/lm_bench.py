#!/usr/bin/env python3
"""nanoGPT's baby GPT (or the char-lstm preset, --model char-lstm) on the
shipped Shakespeare, ours against the PyTorch twin (tools/gpt_twin.py bench),
alternating, one seed at a time.

    python3 tools/lm_bench.py [--model gpt-baby|char-lstm] [--seeds 0 1 2] [--steps 2000] [--threads 2]

Ours: `backprop train --data data/shakespeare.txt --seed S --max-steps N
--eval-every 0 --json` (the gpt-baby recipe: 4 layers, 4 heads, width 128,
context 64, batch 12, AdamW 1e-3, warm-up 100, cosine to 1e-4, beta2 0.99,
weight decay 0.1 on matrices, clipping 1.0). Both print the training time
(no estimates during it) and the loss over the whole validation split
(window i reads val[iT:(i+1)T]). Peak memory is each process's maximum
resident set. Prints a Markdown table: ms a step, share of the FMA peak
(--peak GFLOP/s, measured with tools/fma_peak.c; 4.0 GFLOP a step, see
BENCHMARKS.md), validation loss, peak MiB, and the means.
"""
import argparse
import json
import os
import tempfile
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.path.join(ROOT, "data", "shakespeare.txt")
GFLOP_PER_STEP = 4.0


def run(cmd, threads):
    """The command's last JSON line and its own peak resident MiB."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            sys.exit(f"{' '.join(cmd)} failed:\n{err.read().decode()}")
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    return json.loads(line), usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peak", type=float, default=None, help="FMA peak, GFLOP/s")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "backprop"))
    ap.add_argument("--model", choices=["gpt-baby", "char-lstm"], default="gpt-baby")
    ap.add_argument("--gflop", type=float, default=GFLOP_PER_STEP, help="GFLOP a step (forward, ∂W, ∂x)")
    a = ap.parse_args()
    rows = []
    for s in a.seeds:
        ours, ours_mib = run([a.bin, "train", "--data", DATA, "--model", a.model, "--seed", str(s), "--max-steps",
                              str(a.steps), "--eval-every", "0", "--threads", str(a.threads),
                              "--json"], a.threads)
        theirs, theirs_mib = run([sys.executable, os.path.join(ROOT, "tools", "gpt_twin.py"), "bench",
                                  "--data", DATA, "--model", a.model, "--seed", str(s), "--steps", str(a.steps),
                                  "--threads", str(a.threads)], a.threads)
        rows.append((s, ours["ms_per_step"], ours["val_loss"], ours_mib,
                     theirs["ms_per_step"], theirs["val_loss"], theirs_mib))
        print(f"seed {s}: ours {ours['ms_per_step']:.1f} ms, val {ours['val_loss']:.4f}; "
              f"pytorch {theirs['ms_per_step']:.1f} ms, val {theirs['val_loss']:.4f}", file=sys.stderr)
    share = (lambda ms: f"{100 * a.gflop / (ms / 1e3) / a.peak:.0f} %") if a.peak else (lambda ms: "")
    print("| seed | backprop ms/step | share | val loss | PyTorch ms/step | share | val loss | speed-up |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for s, om, ov, _, tm, tv, _ in rows:
        print(f"| {s} | {om:.1f} | {share(om)} | {ov:.4f} | {tm:.1f} | {share(tm)} | {tv:.4f} | {tm / om:.2f}× |")
    n = len(rows)
    mean = lambda i: sum(r[i] for r in rows) / n
    print(f"| mean | **{mean(1):.1f}** | {share(mean(1))} | **{mean(2):.4f}** | {mean(4):.1f} | "
          f"{share(mean(4))} | {mean(5):.4f} | **{mean(4) / mean(1):.2f}×** |")
    print(f"\npeak resident MiB (mean): backprop {mean(3):.0f}, PyTorch {mean(6):.0f}")


if __name__ == "__main__":
    main()
