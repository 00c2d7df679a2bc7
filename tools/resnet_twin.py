#!/usr/bin/env python3
"""The PyTorch twin of the `resnet8` preset (src/nn/spec.rs):

    conv2d(3,16,3,padding=1,bias=false),batchnorm2d(16),relu,resblock(16,16),
    resblock(16,32,stride=2),resblock(32,64,stride=2),adaptiveavgpool2d(1),
    flatten,linear(64,10)

built as an nn.Sequential of the same layers, with torchvision's BasicBlock
attribute names for the blocks, so that its state_dict names (`0.weight`,
`1.running_mean`, `3.conv1.weight`, `4.downsample.0.weight`, `8.bias`, ...)
are the ones our library uses.

    python3 tools/resnet_twin.py bench [--images 50000] [--batch 128] [--steps 60] [--threads 2] [--seed 0] [--json]
        time PyTorch training on random CIFAR-shaped data (torch.rand inputs
        [images,3,32,32], labels 0..9, made once in memory): Adam lr 1e-3,
        cross-entropy, train mode, shuffled batches. 5 warm-up steps, then
        --steps timed ones; prints ms a step, images/s, the seconds an epoch
        of --images images would take (ceil(images/batch) steps), and the
        GFLOP of an epoch counted analytically (3 × 2 × multiply-adds of one
        forward pass × images: the forward and the two backward products,
        ∂W and ∂x, also for the first convolution, whose ∂x nobody needs)
        with the GFLOP/s achieved. Every step is timed on its own: the mean
        is the headline, the median (and the fastest) show how much of it
        is other load — with 2 threads on 2 shared cores a competing process
        can make a step 10-20× slower (OpenMP threads spin at barriers while
        a core is taken), so bench on an idle machine. --json prints one
        JSON line instead.

    python3 tools/resnet_twin.py fixture [--out tests/fixtures/resnet8.safetensors]
        write the parity fixture (not run by CI; the file is committed):
        init.<name> (float32, num_batches_tracked int64) for the model that
        torch.manual_seed(0) initialises; x [8,3,32,32] and y [8] drawn after
        torch.manual_seed(1); the train-mode loss (float64, shape [1]),
        logits [8,10] and grad.<name> of the float64 model on that batch;
        and a float32 run of 3 Adam steps (lr 1e-3, defaults) on the same
        batch with the loss of every step before its update (losses, float32
        [3]) and the state_dict after them (final.<name>, buffers included).

Needs torch, numpy and safetensors.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = ("conv2d(3,16,3,padding=1,bias=false),batchnorm2d(16),relu,resblock(16,16),"
        "resblock(16,32,stride=2),resblock(32,64,stride=2),adaptiveavgpool2d(1),flatten,linear(64,10)")


class Block(nn.Module):
    """torchvision's BasicBlock: resblock(c,o,stride=s)."""

    def __init__(self, c, o, s):
        super().__init__()
        self.conv1 = nn.Conv2d(c, o, 3, stride=s, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.downsample = None
        if s != 1 or c != o:
            self.downsample = nn.Sequential(nn.Conv2d(c, o, 1, stride=s, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + (self.downsample(x) if self.downsample is not None else x)
        return F.relu(out)


def resnet8():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def forward_macs(model, hw=32):
    """Multiply-adds of one image's forward pass: every convolution
    out_ch·in_ch·k·k·Ho·Wo (groups are 1 here), every linear in·out."""
    macs = 0

    def conv(m, h):
        ho = (h + 2 * m.padding[0] - m.kernel_size[0]) // m.stride[0] + 1
        return m.out_channels * m.in_channels * m.kernel_size[0] * m.kernel_size[1] * ho * ho, ho

    h = hw
    for layer in model:
        if isinstance(layer, nn.Conv2d):
            n, h = conv(layer, h)
            macs += n
        elif isinstance(layer, Block):
            n1, h1 = conv(layer.conv1, h)
            n2, _ = conv(layer.conv2, h1)
            macs += n1 + n2
            if layer.downsample is not None:
                macs += conv(layer.downsample[0], h)[0]
            h = h1
        elif isinstance(layer, nn.Linear):
            macs += layer.in_features * layer.out_features
    return macs


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def bench(a):
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    model = resnet8()
    model.train()
    x = torch.rand(a.images, 3, 32, 32)
    y = torch.randint(0, 10, (a.images,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    order, pos = torch.randperm(a.images), 0

    def step():
        nonlocal order, pos
        if pos + a.batch > a.images:
            order, pos = torch.randperm(a.images), 0
        ix = order[pos:pos + a.batch]
        pos += a.batch
        loss = loss_fn(model(x[ix]), y[ix])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(5):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    loss = loss.item()

    ms = 1000 * sum(times) / a.steps
    ms_median = 1000 * statistics.median(times)
    macs = forward_macs(model)
    steps_per_epoch = math.ceil(a.images / a.batch)
    epoch_s = steps_per_epoch * ms / 1000
    gflop_epoch = 3 * 2 * macs * a.images / 1e9
    r = {"framework": "pytorch", "model": "resnet8", "torch": torch.__version__, "threads": a.threads,
         "cpu": cpu_model(), "seed": a.seed, "batch": a.batch, "steps": a.steps, "images": a.images,
         "ms_per_step": round(ms, 2), "ms_per_step_median": round(ms_median, 2),
         "ms_per_step_min": round(1000 * min(times), 2), "images_per_s": round(a.batch * 1000 / ms, 1),
         "steps_per_epoch": steps_per_epoch, "epoch_s": round(epoch_s, 1),
         "forward_macs_per_image": macs, "gflop_per_epoch": round(gflop_epoch, 1),
         "gflop_per_s": round(gflop_epoch / epoch_s, 1),
         "epoch_s_median": round(steps_per_epoch * ms_median / 1000, 1),
         "gflop_per_s_median": round(gflop_epoch / (steps_per_epoch * ms_median / 1000), 1),
         "last_loss": round(loss, 4)}
    if a.json:
        print(json.dumps(r))
        return
    print(f"torch {r['torch']}, {a.threads} threads, CPU: {r['cpu']}")
    print(f"resnet8, batch {a.batch}, Adam lr 1e-3, train mode; 5 warm-up steps, {a.steps} timed "
          f"(last loss {r['last_loss']:.4f})")
    print(f"  {ms:.1f} ms/step (mean; median {ms_median:.1f}, fastest {r['ms_per_step_min']:.1f}), "
          f"{r['images_per_s']:.0f} images/s")
    print(f"  epoch of {a.images} images: {steps_per_epoch} steps, {epoch_s:.1f} s extrapolated "
          f"({r['epoch_s_median']:.1f} s at the median step)")
    print(f"  forward: {macs:,} multiply-adds an image; 3 x 2 x MACs x images = {gflop_epoch:.1f} GFLOP an epoch; "
          f"{r['gflop_per_s']:.1f} GFLOP/s achieved ({r['gflop_per_s_median']:.1f} at the median step)")


def fixture(a):
    torch.manual_seed(0)
    model = resnet8()  # float32, PyTorch's default initialisation
    torch.manual_seed(1)
    x = torch.rand(8, 3, 32, 32)
    y = torch.randint(0, 10, (8,))
    init = {k: v.clone() for k, v in model.state_dict().items()}
    t = {f"init.{k}": v for k, v in init.items()}
    t["x"], t["y"] = x, y

    # The float64 oracle: one training-mode pass from the float32 values.
    m64 = resnet8().double()
    m64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in init.items()})
    m64.train()
    logits = m64(x.double())
    loss = F.cross_entropy(logits, y)
    loss.backward()
    t["loss"] = loss.detach().reshape(1)
    t["logits"] = logits.detach().clone()
    for n, p in m64.named_parameters():
        t[f"grad.{n}"] = p.grad.detach().clone()

    # A float32 run: 3 Adam steps (lr 1e-3, defaults) on the same batch.
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        l = F.cross_entropy(model(x), y)
        l.backward()
        opt.step()
        losses.append(l.detach())
    t["losses"] = torch.stack(losses).float()
    for k, v in model.state_dict().items():
        t[f"final.{k}"] = v.clone()

    meta = {"spec": SPEC, "torch_version": torch.__version__,
            "note": "resnet8 parity: init.* = torch.manual_seed(0) float32 default init; x, y after "
                    "torch.manual_seed(1); loss (float64 [1]), logits, grad.* from the float64 model in "
                    "train mode; losses (float32 [3], each before its update) and final.* from 3 float32 "
                    "Adam steps (lr 1e-3, defaults) on x, y in train mode"}
    out = a.out if os.path.isabs(a.out) else os.path.join(ROOT, a.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    save_file({k: v.contiguous() for k, v in t.items()}, out, metadata=meta)
    count = lambda p: sum(k.startswith(p) for k in t)
    print(f"wrote {out}: {len(t)} tensors ({count('init.')} init, {count('grad.')} grad, {count('final.')} final), "
          f"{os.path.getsize(out)} bytes; loss {loss.item():.12f}, losses {[round(v.item(), 6) for v in losses]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    bp = sub.add_parser("bench")
    bp.add_argument("--images", type=int, default=50000)
    bp.add_argument("--batch", type=int, default=128)
    bp.add_argument("--steps", type=int, default=60)
    bp.add_argument("--threads", type=int, default=2)
    bp.add_argument("--seed", type=int, default=0)
    bp.add_argument("--json", action="store_true")
    fp = sub.add_parser("fixture")
    fp.add_argument("--out", default=os.path.join("tests", "fixtures", "resnet8.safetensors"))
    a = ap.parse_args()
    {"bench": bench, "fixture": fixture}[a.cmd](a)


if __name__ == "__main__":
    main()
