#!/usr/bin/env python3
"""Side-by-side speed of backprop and PyTorch on the five benchmark workloads.

usage: python3 tools/bench.py [WORKLOAD ...] [--epochs N] [--threads T] [--rounds R] [--burn]

For each workload, runs ../shared/bench/torch_bench.py and `backprop train`
with the same model, batch size, optimizer and thread count, alternating
(R rounds), and prints one Markdown table row per workload: median seconds
per training epoch for each, the ratio, test accuracy, and peak resident
memory of each process (from wait4's rusage). Build first:
`cargo build --release`. PyTorch must be installed (`pip install torch`).
With --burn, burn 0.22's CPU backend runs in each round too (build it first:
`cargo build --release` in tools/burn_bench) and gets its own columns.
"""
import argparse, json, os, re, statistics, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH = os.path.join(ROOT, '..', 'shared', 'bench', 'torch_bench.py')
BIN = os.path.join(ROOT, 'target', 'release', 'backprop')
BURN = os.path.join(ROOT, 'tools', 'burn_bench', 'target', 'release', 'burn_bench')
DATA = os.path.join(ROOT, 'data', 'mnist')

WORKLOADS = {
    'mlp-small': ['--model', 'flatten,linear(784,128),relu,linear(128,10)', '--batch-size', '64', '--optimizer', 'adam', '--lr', '1e-3'],
    'mlp-wide': ['--model', 'mlp-wide', '--batch-size', '256', '--optimizer', 'sgd', '--lr', '0.05', '--momentum', '0.9'],
    'cnn-lenet': ['--model', 'lenet', '--batch-size', '64', '--optimizer', 'adam', '--lr', '1e-3'],
    'rnn-rows': ['--model', 'rnn', '--batch-size', '64', '--optimizer', 'adam', '--lr', '1e-3'],
    'mlp-bn': ['--model', 'mlp-bn', '--batch-size', '128', '--optimizer', 'sgd', '--lr', '0.1', '--momentum', '0.9'],
}


def run(cmd):
    """Run cmd; return (stdout, peak RSS in MiB)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f'failed ({status}): {" ".join(cmd)}')
    return out, ru.ru_maxrss / 1024


def torch_once(w, a):
    out, mem = run([sys.executable, TORCH, w, '--epochs', str(a.epochs), '--threads', str(a.threads), '--data', DATA])
    m = re.search(r'epoch_s=([\d.]+) test_acc=([\d.]+)', out)
    return float(m.group(1)), float(m.group(2)), mem


def burn_once(w, a):
    out, mem = run([BURN, w, '--epochs', str(a.epochs), '--threads', str(a.threads), '--data', DATA])
    m = re.search(r'epoch_s=([\d.]+) test_acc=([\d.]+)', out)
    return float(m.group(1)), float(m.group(2)), mem


def ours_once(w, a):
    cmd = [BIN, 'train', *WORKLOADS[w], '--epochs', str(a.epochs), '--threads', str(a.threads), '--data', DATA, '--json']
    out, mem = run(cmd)
    d = json.loads(out.strip().splitlines()[-1])
    secs = sorted(e['train_seconds'] for e in d['epochs'])
    return secs[len(secs) // 2], d['test_accuracy'], mem


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('workloads', nargs='*', default=list(WORKLOADS))
    ap.add_argument('--epochs', type=int, default=1)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--burn', action='store_true', help='also time burn (tools/burn_bench)')
    a = ap.parse_args()
    if a.burn and not os.path.exists(BURN):
        sys.exit(f'{BURN} not found: run `cargo build --release` in tools/burn_bench first')
    head = ['PyTorch s/epoch', 'backprop s/epoch', 'speed-up', 'PyTorch acc', 'backprop acc',
            'PyTorch peak MiB', 'backprop peak MiB']
    if a.burn:
        head += ['burn s/epoch', 'burn / backprop', 'burn acc', 'burn peak MiB']
    print('| workload | ' + ' | '.join(head) + ' |')
    print('| --- ' * (len(head) + 1) + '|')
    for w in a.workloads:
        t, o, b = [], [], []
        for _ in range(a.rounds):
            t.append(torch_once(w, a))
            o.append(ours_once(w, a))
            if a.burn:
                b.append(burn_once(w, a))
        ts = statistics.median(x[0] for x in t)
        os_ = statistics.median(x[0] for x in o)
        row = (f'| {w} | {ts:.3f} | {os_:.3f} | {ts / os_:.2f}× | {t[-1][1]:.4f} | {o[-1][1]:.4f} | '
               f'{max(x[2] for x in t):.0f} | {max(x[2] for x in o):.0f} |')
        if a.burn:
            bs = statistics.median(x[0] for x in b)
            row += f' {bs:.3f} | {bs / os_:.2f}× | {b[-1][1]:.4f} | {max(x[2] for x in b):.0f} |'
        print(row, flush=True)


if __name__ == '__main__':
    main()
