#!/usr/bin/env python3
"""The PyTorch twin of examples/speedrun.rs: the same model line, optimizer,
learning-rate schedule, batch size and epochs, timed the same way (from
before the data is read to the test accuracy, data loading included; the
`import torch` before it is reported apart).

usage: python3 tools/speedrun_twin.py [--seed S] [--threads T] [--recipe FILE]

The recipe is read from examples/speedrun.rs's constants (MODEL, EPOCHS,
BATCH, LR, ...), so the two cannot drift apart. Prints the test accuracy
last, as `backprop train` does.
"""
import time

T_IMPORT = time.perf_counter()
import argparse, os, re, sys  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The MNIST reader of the shared benchmark script.
sys.path.insert(0, os.path.join(ROOT, '..', 'shared', 'bench'))
from torch_bench import data  # noqa: E402


def recipe(path):
    """The constants of examples/speedrun.rs: `const NAME: T = value;`."""
    text = open(path).read()
    out = {}
    for name, value in re.findall(r'const ([A-Z_]+): [^=]+= ([^;]+);', text):
        out[name] = eval(value.replace('_', '')) if not value.startswith('"') else value.strip('"')
    return out


def build(line):
    """nn.Sequential from a backprop model line (the layers the recipe uses)."""
    layers = []
    for item in re.findall(r'[a-z_0-9]+(?:\([^)]*\))?', line):
        name, _, args = item.partition('(')
        pos = [a for a in args.rstrip(')').split(',') if a and '=' not in a]
        kw = dict(a.split('=') for a in args.rstrip(')').split(',') if '=' in a)
        ints = [int(a) for a in pos]
        if name == 'conv2d':
            layers.append(nn.Conv2d(*ints, padding=int(kw.get('padding', 0)), stride=int(kw.get('stride', 1))))
        elif name == 'batchnorm2d':
            layers.append(nn.BatchNorm2d(*ints))
        elif name == 'batchnorm1d':
            layers.append(nn.BatchNorm1d(*ints))
        elif name == 'relu':
            layers.append(nn.ReLU())
        elif name == 'maxpool2d':
            layers.append(nn.MaxPool2d(*ints))
        elif name == 'flatten':
            layers.append(nn.Flatten())
        elif name == 'linear':
            layers.append(nn.Linear(*ints))
        else:
            sys.exit(f'speedrun_twin: layer {name} not in this script')
    return nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--recipe', default=os.path.join(ROOT, 'examples', 'speedrun.rs'))
    a = ap.parse_args()
    r = recipe(a.recipe)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    xtr, ytr, xte, yte = data(os.path.join(ROOT, 'data', 'mnist'))
    xtr, xte = xtr.unsqueeze(1), xte.unsqueeze(1)
    m = build(r['MODEL'])
    opt = torch.optim.Adam(m.parameters(), r['LR'])
    bs = r['BATCH']
    # The same one-cycle schedule, stepped after every batch (ours does not cycle β₁).
    steps = r['EPOCHS'] * ((len(xtr) + bs - 1) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r['LR'], total_steps=steps, cycle_momentum=False)
    lossf = nn.CrossEntropyLoss()
    for _ in range(r['EPOCHS']):
        m.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), bs):
            idx = perm[i:i + bs]
            opt.zero_grad(set_to_none=True)
            lossf(m(xtr[idx]), ytr[idx]).backward()
            opt.step()
            sched.step()
    m.eval()
    with torch.no_grad():
        right = sum((m(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item() for i in range(0, len(xte), 1000))
    t1 = time.perf_counter()
    print(f'import torch {t0 - T_IMPORT:.2f} s; data, training and test {t1 - t0:.2f} s', file=sys.stderr)
    print(f'test accuracy {right / len(xte) * 100:.2f}% in {t1 - t0:.2f} s (torch {torch.__version__}, '
          f'{a.threads} threads, seed {a.seed})')


if __name__ == '__main__':
    main()
