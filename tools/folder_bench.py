#!/usr/bin/env python3
"""Images a second decoded from a folder of PNGs (one subfolder per class):
torchvision's ImageFolder with ToTensor() through DataLoader(batch_size=64,
shuffle=True, num_workers=1), one full pass, timed from after the loader is
built to its last batch (the worker's start included). With --ours CMD it
then runs our side, a shell command, and prints its stdout.

    python3 tools/folder_bench.py --make /tmp/pngs [--n 10000] [--size 32] [--classes 10] [--seed 0]
    python3 tools/folder_bench.py --folder /tmp/pngs [--ours CMD]

--make writes DIR/class_k/NNNNN.png: seeded random-noise RGB images, image i
in class i mod classes. Both flags may be given at once (make, then time).
Needs torchvision and Pillow (`pip install torchvision`, a build that keeps
the installed torch).
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np


def make(folder, n, size, classes, seed):
    """Write n random-noise size×size RGB PNGs into classes subfolders."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    for k in range(classes):
        os.makedirs(os.path.join(folder, f"class_{k}"), exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(os.path.join(folder, f"class_{i % classes}", f"{i:05d}.png"))
    print(f"wrote {n} {size}x{size} RGB PNGs in {classes} classes to {folder}", file=sys.stderr)


def torchvision_pass(folder):
    """(images, seconds) of one shuffled pass over the folder."""
    import torch
    from torchvision import datasets, transforms
    data = datasets.ImageFolder(folder, transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, num_workers=1)
    t0 = time.perf_counter()
    images = 0
    for x, _ in loader:
        images += x.shape[0]
    return images, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--make", metavar="DIR", help="write a folder of random PNGs here")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folder", metavar="DIR", help="time torchvision over this folder")
    ap.add_argument("--ours", metavar="CMD", help="our side: a shell command, its stdout printed")
    a = ap.parse_args()
    if not (a.make or a.folder):
        ap.error("give --make DIR, --folder DIR or both")
    if a.make:
        make(a.make, a.n, a.size, a.classes, a.seed)
    if a.folder:
        import torch
        import torchvision
        images, dt = torchvision_pass(a.folder)
        print(f"torchvision {torchvision.__version__} (torch {torch.__version__}) ImageFolder + DataLoader"
              f"(num_workers=1, batch_size=64, shuffle=True): {images} images in {dt:.2f} s, "
              f"{images / dt:.0f} images/s")
    if a.ours:
        p = subprocess.run(a.ours, shell=True, capture_output=True, text=True)
        print(f"ours: {a.ours}")
        print(p.stdout, end="")
        if p.returncode != 0:
            sys.exit(f"ours exited {p.returncode}:\n{p.stderr}")


if __name__ == "__main__":
    main()
