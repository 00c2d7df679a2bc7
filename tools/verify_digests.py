#!/usr/bin/env python3
"""Check the SHA-256 digests backprop writes into a safetensors file.

    python3 tools/verify_digests.py runs/x.safetensors runs/x.state.safetensors

Every file backprop saves carries, in its metadata under `backprop.sha256`,
a JSON object with the SHA-256 of each tensor (its dtype name, a NUL, its
shape as comma-separated numbers, a NUL, then its bytes as stored) and,
under `__metadata__`, of every other metadata entry (key, NUL, value, NUL,
in key order). This script checks them independently of the Rust code, with
the standard library only. Exit status 0: every file matches; 1: a file is
damaged (the tensor is named); 2: a file holds no digests (PyTorch's).
"""
import hashlib
import json
import struct
import sys

KEY = "backprop.sha256"


def check(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    meta = header.pop("__metadata__", {}) or {}
    if KEY not in meta:
        return 2, f"{path}: no digests (not written by backprop)"
    saved = json.loads(meta[KEY])
    h = hashlib.sha256()
    for k in sorted(k for k in meta if k != KEY):
        h.update(k.encode() + b"\0" + meta[k].encode() + b"\0")
    if saved.get("__metadata__") != h.hexdigest():
        return 1, f"{path}: the metadata does not match its digest"
    for name, info in sorted(header.items()):
        lo, hi = info["data_offsets"]
        h = hashlib.sha256()
        h.update(info["dtype"].encode() + b"\0")
        h.update(",".join(str(d) for d in info["shape"]).encode() + b"\0")
        h.update(body[lo:hi])
        if saved.get(name) != h.hexdigest():
            return 1, f"{path}: tensor `{name}` does not match its digest"
    missing = set(saved) - set(header) - {"__metadata__"}
    if missing:
        return 1, f"{path}: tensor `{sorted(missing)[0]}` is missing"
    return 0, f"{path}: {len(header)} tensors and the metadata match"


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    worst = 0
    for p in sys.argv[1:]:
        code, msg = check(p)
        print(msg, file=sys.stderr if code else sys.stdout)
        worst = max(worst, code)
    return worst


if __name__ == "__main__":
    sys.exit(main())
