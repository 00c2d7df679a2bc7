#!/usr/bin/env bash
# A/B of two builds of backprop: N alternating runs of `backprop train ARGS --json`
# with each binary; prints the min and median epoch seconds and the test accuracy.
# usage: tools/ab.sh N BIN_A BIN_B -- train args...
n=$1; a=$2; b=$3; shift 4
for i in $(seq $n); do for bin in $a $b; do $bin train "$@" --json --no-plots 2>/dev/null | tail -1 | python3 -c "import json,sys; s=json.load(sys.stdin); print('$bin', ' '.join(str(round(e['train_seconds'],3)) for e in s['epochs']), s['test_accuracy'])"; done; done | python3 -c "
import sys,statistics
d={}; acc={}
for l in sys.stdin:
    p=l.split(); d.setdefault(p[0],[]).append([float(x) for x in p[1:-1]]); acc[p[0]]=p[-1]
for k,v in d.items():
    f=[x for r in v for x in r]; print(k, 'min %.3f median %.3f' % (min(f), statistics.median(f)), 'acc', acc[k])
"
