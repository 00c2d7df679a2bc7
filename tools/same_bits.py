#!/usr/bin/env python3
"""Do two builds train the same weights, bit for bit?

usage: python3 tools/same_bits.py BIN_A BIN_B [--steps N] [--threads T] [WORKLOAD ...]

For each workload (the five of tools/bench.py, and `speedrun`: the recipe of
examples/speedrun.rs as `backprop train` flags), trains N steps (default
300, crossing batch-norm, dropout, the schedule and the diagnostics) with
each binary, saves the model, and compares every tensor's bytes. Prints one
line per workload; exit status 1 if any differs. A refactor that must not
change results (same seed, same thread count) is checked with it.
Standard library only.
"""
import json, os, struct, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import DATA, WORKLOADS  # noqa: E402

SPEEDRUN = ['--model', 'speedrun', '--optimizer', 'adam', '--lr', '0.01', '--batch-size', '128',
            '--epochs', '2', '--lr-schedule', 'one-cycle', '--diagnostics-every', '0']


def tensors(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop('__metadata__', None)
    body = b[8 + n:]
    return {k: body[v['data_offsets'][0]:v['data_offsets'][1]] for k, v in sorted(h.items())}


def main():
    args = sys.argv[1:]
    steps, threads = '300', '2'
    for flag in ('--steps', '--threads'):
        if flag in args:
            i = args.index(flag)
            val = args[i + 1]
            del args[i:i + 2]
            if flag == '--steps':
                steps = val
            else:
                threads = val
    if len(args) < 2:
        sys.exit(__doc__)
    bins, names = args[:2], args[2:] or [*WORKLOADS, 'speedrun']
    bad = 0
    with tempfile.TemporaryDirectory() as d:
        for w in names:
            flags = SPEEDRUN if w == 'speedrun' else [*WORKLOADS[w], '--epochs', '2']
            got = []
            for k, b in enumerate(bins):
                out = os.path.join(d, f'{w}-{k}.safetensors')
                subprocess.run([b, 'train', *flags, '--data', DATA, '--max-steps', steps, '--threads', threads,
                                '--seed', '1', '--quiet', '--no-plots', '--save', out, '--force'],
                               check=True, stdout=subprocess.DEVNULL)
                got.append(tensors(out))
            same = got[0] == got[1]
            bad += not same
            print(f'{w:10} {"bit-identical" if same else "DIFFERENT"} ({len(got[0])} tensors, {steps} steps)')
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
