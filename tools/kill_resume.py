#!/usr/bin/env python3
"""kill -9 at random moments, then --resume, on the five benchmark workloads:
the final weights must be bit-identical to an uninterrupted run's.

usage: python3 tools/kill_resume.py [WORKLOAD ...] [--epochs N] [--kills K] [--seed S]

Build first (`cargo build --release`). For each workload (the flags of
tools/bench.py) it trains once without interruption, then trains again
killing the process with SIGKILL K times at random moments (printed) and
resuming each time with `backprop train --resume`, and compares every
tensor of the two model files byte for byte, and their metrics.csv. Not run
by CI (tests/resume.rs is the CI version on a small run).
"""
import argparse, os, random, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BIN, DATA, WORKLOADS  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('workloads', nargs='*', default=list(WORKLOADS))
    ap.add_argument('--epochs', type=int, default=2)
    ap.add_argument('--kills', type=int, default=3)
    ap.add_argument('--seed', type=int, default=int(time.time()))
    a = ap.parse_args()
    rng = random.Random(a.seed)
    print(f'seed {a.seed}')
    ok = True
    for w in a.workloads:
        d = tempfile.mkdtemp()
        base = [BIN, 'train', *WORKLOADS[w], '--epochs', str(a.epochs), '--threads', '2', '--data', DATA,
                '--save-every', '50', '--quiet', '--no-plots']
        t0 = time.time()
        subprocess.run(base + ['--save', f'{d}/whole.safetensors'], check=True)
        whole_s = time.time() - t0
        log = []
        kills = 0
        while True:
            state = f'{d}/killed.state.safetensors'
            cmd = (base + ['--save', f'{d}/killed.safetensors']) if not os.path.exists(state) else \
                [BIN, 'train', '--resume', f'{d}/killed.safetensors', '--quiet', '--no-plots']
            p = subprocess.Popen(cmd)
            if kills < a.kills:
                t = rng.uniform(0.3, whole_s)
                try:
                    p.wait(timeout=t)
                    log.append(f'finished before {t:.2f}s')
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
                    kills += 1
                    log.append(f'killed at {t:.2f}s')
                    continue
            if p.wait() != 0:
                sys.exit(f'{w}: the resumed run failed')
            break
        a_t, b_t = load_file(f'{d}/whole.safetensors'), load_file(f'{d}/killed.safetensors')
        same = sorted(a_t) == sorted(b_t) and all(a_t[k].tobytes() == b_t[k].tobytes() for k in a_t)
        csv = open(f'{d}/whole.metrics.csv').read() == open(f'{d}/killed.metrics.csv').read()
        print(f'{w:10} {"bit-identical" if same else "DIFFERENT"} weights, metrics.csv {"identical" if csv else "DIFFERENT"} '
              f'({"; ".join(log)})', flush=True)
        ok &= same and csv
        shutil.rmtree(d)
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
