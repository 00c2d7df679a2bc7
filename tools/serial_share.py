#!/usr/bin/env python3
"""How much of the calling thread's training time runs alone, and where.

With two threads, every moment the calling thread spends outside a parallel
region (`team::run`) is a moment the helper thread waits. This reads a
`perf script` dump of a run recorded with call graphs, keeps the samples of
the calling thread inside `Trainer::run`, and counts those whose stack holds
no `team::run` / `Team::work` frame (serial code), grouped by the innermost
frame of this crate that is not a helper (`cpu::par`) or a library frame.

usage:
  perf record -F 1500 --call-graph dwarf,32768 -o /tmp/perf.data \\
      ./target/release/backprop train --model lenet --epochs 1 --threads 2 --no-plots
  perf script -i /tmp/perf.data -F tid,ip,sym > /tmp/stacks.txt
  python3 tools/serial_share.py /tmp/stacks.txt [ROWS]

The stacks are cut at 32 KiB, so a few deep samples lose their outer frames
and may be counted as serial: read the list as where to look, not a verdict.
Not run by CI.
"""
import collections
import sys


def samples(path):
    cur = None
    for line in open(path):
        line = line.rstrip('\n')
        if not line.strip():
            if cur:
                yield cur
            cur = None
        elif not line.startswith('\t'):
            # The thread id, right-aligned (a leading space when short).
            cur = (line.strip(), [])
        elif cur is not None:
            parts = line.strip().split(' ', 1)
            if len(parts) > 1:
                cur[1].append(parts[1])
    if cur:
        yield cur


def main():
    path = sys.argv[1]
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    all_samples = list(samples(path))
    by_tid = collections.Counter(tid for tid, _ in all_samples)
    # The calling thread: the one whose stacks reach a `main`.
    main_tid = next(
        (tid for tid, _ in by_tid.most_common()
         if any(f.endswith('::main') for t, fr in all_samples if t == tid for f in fr)),
        None)
    training = parallel = 0
    serial = collections.Counter()
    skip = ('cpu::par::', 'tensor::par::', 'core::', 'alloc::', 'std::')
    for tid, frames in all_samples:
        if tid != main_tid or not any('Trainer::run' in f or 'train_lm_from' in f for f in frames):
            continue
        training += 1
        if any('team::run' in f or 'Team::work' in f for f in frames):
            parallel += 1
            continue
        where = next((f for f in frames
                      if 'backprop::' in f and not any(s in f for s in skip)), '?')
        serial[where] += 1
    alone = training - parallel
    print(f'calling thread in Trainer::run: {training} samples, {parallel} in parallel '
          f'regions, {alone} serial ({100 * alone / max(training, 1):.1f} %)')
    for where, n in serial.most_common(rows):
        print(n, where[:140])


if __name__ == '__main__':
    main()
