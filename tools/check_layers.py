#!/usr/bin/env python3
"""The house rules of src/, checked (run by .ci/run):

1. Dependencies point one way. Each room of the library may use only the
   rooms listed below it in ROOMS (`crate::X` paths in code; comments, doc
   links and the `#[cfg(test)] mod tests` at a file's end are not counted).
2. `unsafe` only under src/cpu/ (the other modules also carry
   `#[forbid(unsafe_code)]`, so the compiler refuses it too).
3. No function longer than 150 lines, unless the line above its `fn` (or its
   attributes) says `// long:` or `// unrolled` and why.

Exit status 1 with one line per breach. Standard library only.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src')

# room -> the rooms it may use (besides itself). The order is the house:
# each room sits on the ones named in its list.
ROOMS = {
    'cpu': [],
    'error': [],
    'tensor': ['cpu'],
    'dist': ['error'],
    'mem': ['cpu', 'error'],
    'autograd': ['cpu', 'tensor', 'error'],
    'ops': ['autograd', 'cpu', 'tensor', 'dist', 'error'],
    'nn': ['ops', 'autograd', 'cpu', 'tensor', 'dist', 'mem', 'error'],
    'optim': ['nn', 'autograd', 'cpu', 'tensor', 'error'],
    'io': ['nn', 'cpu', 'tensor', 'error'],
    'data': ['io', 'cpu', 'tensor', 'mem', 'error'],
    'inspect': ['nn', 'optim', 'ops', 'autograd', 'data', 'io', 'cpu', 'tensor', 'error'],
    'train': ['inspect', 'data', 'optim', 'nn', 'ops', 'autograd', 'dist', 'io', 'mem', 'cpu',
              'tensor', 'error'],
    'run': ['train', 'inspect', 'data', 'optim', 'nn', 'ops', 'autograd', 'dist', 'io', 'mem',
            'cpu', 'tensor', 'error'],
    'serve': ['run', 'train', 'inspect', 'data', 'nn', 'io', 'tensor', 'error'],
}
# Items the crate root re-exports from a room (`crate::Tensor` is tensor's).
ROOT_ITEMS = {'Tensor': 'tensor', 'Error': 'error', 'Result': 'error', 'Setting': 'error',
              'SETTINGS': 'error', 'Graph': 'autograd', 'Var': 'autograd',
              'GradTable': 'autograd', 'ParamGrads': 'autograd', 'submodules': 'nn',
              'rand': 'cpu', 'alloc': 'cpu', 'prelude': 'run'}


def room_of(path):
    rel = os.path.relpath(path, ROOT)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith('.rs') else first


def code_lines(text):
    """The file's lines without comments and without its trailing test module."""
    m = re.search(r'^#\[cfg\(test\)\]\s*\nmod tests\b', text, re.M)
    if m:
        text = text[:m.start()]
    out = []
    for line in text.split('\n'):
        line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
        out.append(line.split('//')[0])
    return out


def fn_lengths(lines):
    """(line number, name, length, marked) of every fn with a body."""
    res = []
    for i, line in enumerate(lines):
        m = re.match(r'\s*(pub(\([a-z]+\))?\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)', line)
        if not m:
            continue
        depth, started, j = 0, False, i
        while j < len(lines):
            s = re.sub(r"'(\\.|[^'\\])'", "''", lines[j])
            for ch in s:
                if ch == '{':
                    depth += 1
                    started = True
                elif ch == '}':
                    depth -= 1
            if started and depth == 0:
                break
            if not started and s.rstrip().endswith(';'):
                break
            j += 1
        k = i - 1
        while k >= 0 and lines[k].strip().startswith(('#[', '///')):
            k -= 1
        res.append((i + 1, m.group(5), j - i + 1, k, j))
    return res


def main():
    bad = []
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith('.rs'):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, os.path.join(ROOT, '..'))
            room = room_of(path)
            raw = open(path).read()
            lines = code_lines(raw)
            if room in ROOMS:
                allowed = set(ROOMS[room]) | {room}
                for n, line in enumerate(lines, 1):
                    for m in re.finditer(r'\bcrate::([A-Za-z_]+)', line):
                        used = ROOT_ITEMS.get(m.group(1), m.group(1))
                        if used not in allowed:
                            bad.append(f'{rel}:{n}: {room} uses crate::{m.group(1)} ({used} is above it)')
            if room != 'cpu':
                for n, line in enumerate(lines, 1):
                    if re.search(r'\bunsafe\b', line) and 'forbid(unsafe_code)' not in line:
                        bad.append(f'{rel}:{n}: unsafe outside src/cpu/')
            raw_lines = raw.split('\n')
            for n, name, length, above, _ in fn_lengths(lines):
                if length <= 150:
                    continue
                note = raw_lines[above].strip() if above >= 0 else ''
                if not note.startswith(('// long:', '// unrolled')):
                    bad.append(f'{rel}:{n}: fn {name} is {length} lines (over 150, no `// long:` note)')
    for b in bad:
        print(b)
    if bad:
        sys.exit(1)
    print('house rules: dependencies one way, unsafe only in src/cpu, functions under 150 lines')


if __name__ == '__main__':
    main()
