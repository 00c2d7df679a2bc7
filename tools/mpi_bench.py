#!/usr/bin/env python3
"""One process with 2 threads against `mpirun -np 2` with 1 thread each, on
the five benchmark workloads (the flags of tools/bench.py), alternating.

usage: python3 tools/mpi_bench.py [WORKLOAD ...] [--epochs N] [--rounds R]

Build first: `cargo build --release --features mpi`. Prints a Markdown row
per workload: median epoch seconds of each, their ratio, test accuracy.
"""
import argparse, json, statistics, subprocess, sys, os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BIN, DATA, WORKLOADS  # noqa: E402


def once(w, a, ranks):
    cmd = [BIN, 'train', *WORKLOADS[w], '--epochs', str(a.epochs), '--data', DATA, '--json']
    if ranks > 1:
        cmd = ['mpirun', '--allow-run-as-root', '-np', str(ranks), *cmd, '--threads', '1']
    else:
        cmd += ['--threads', '2']
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    d = json.loads([l for l in out.splitlines() if l.startswith('{')][-1])
    secs = sorted(e['train_seconds'] for e in d['epochs'])
    return secs[len(secs) // 2], d['test_accuracy']


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('workloads', nargs='*', default=list(WORKLOADS))
    ap.add_argument('--epochs', type=int, default=1)
    ap.add_argument('--rounds', type=int, default=2)
    a = ap.parse_args()
    print('| workload | 1 process, 2 threads (s) | 2 ranks, 1 thread each (s) | ratio | accuracy 1 / 2 ranks |')
    print('| --- | --- | --- | --- | --- |')
    for w in a.workloads:
        one, two = [], []
        for _ in range(a.rounds):
            one.append(once(w, a, 1))
            two.append(once(w, a, 2))
        s1 = statistics.median(x[0] for x in one)
        s2 = statistics.median(x[0] for x in two)
        print(f'| {w} | {s1:.3f} | {s2:.3f} | {s2 / s1:.2f} | {one[0][1]:.4f} / {two[0][1]:.4f} |', flush=True)


if __name__ == '__main__':
    main()
