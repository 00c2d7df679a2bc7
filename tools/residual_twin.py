#!/usr/bin/env python3
"""The PyTorch twin of examples/residual.rs: the same network, attribute for
attribute, so that the two share state_dict names.

    python3 tools/residual_twin.py --load runs/residual.safetensors
        load a file saved by `cargo run --release --example residual` with
        load_state_dict (strict) and print its MNIST test accuracy.

    python3 tools/residual_twin.py --fixture tests/fixtures/residual.safetensors
        write the parity fixture of tests/residual.rs (not run by CI; the
        file is committed): initial weights, a batch, the float64 loss and
        gradients of one training-mode pass, and a float32 run of 6 SGD steps
        (momentum 0.9, lr 0.002, batches of 8 in file order) with the loss of
        every step and the final state_dict (batch-norm statistics included).

Needs torch, numpy and safetensors.
"""
import argparse, gzip, json, os, struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + x)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.block1 = Block(16)
        self.block2 = Block(16)
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.bn(self.stem(x))), 2)
        h = F.max_pool2d(self.block1(h), 2)
        h = self.block2(h)
        return self.fc(torch.flatten(h, 1))


def idx(path):
    with gzip.open(path, 'rb') as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack('>' + 'I' * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(path):
    m = ResNet()
    m.load_state_dict(load_file(path))
    m.eval()
    d = os.path.join(ROOT, 'data', 'mnist')
    x = torch.tensor(idx(os.path.join(d, 't10k-images-idx3-ubyte.gz')), dtype=torch.float32) / 255
    y = torch.tensor(idx(os.path.join(d, 't10k-labels-idx1-ubyte.gz')).astype(np.int64))
    with torch.no_grad():
        acc = (m(x[:, None]).argmax(1) == y).float().mean().item()
    print(f'{path}: loaded into the PyTorch twin (strict load_state_dict); test accuracy {100 * acc:.2f}%')


def fixture(path):
    torch.manual_seed(0)
    model = ResNet()
    x = torch.rand(16, 1, 28, 28)
    y = torch.randint(0, 10, (16,))
    init = {k: v.clone() for k, v in model.state_dict().items()}
    t = {f'init.{k}': v.float() if v.is_floating_point() else v for k, v in init.items()}
    t['x'], t['y'] = x, y

    # The float64 oracle: one training-mode pass on the first batch of 8.
    m64 = ResNet().double()
    m64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in init.items()})
    m64.train()
    loss = F.cross_entropy(m64(x[:8].double()), y[:8])
    loss.backward()
    t['loss0'] = loss.detach().reshape(1)
    for n, p in m64.named_parameters():
        t[f'grad.{n}'] = p.grad.detach().clone()

    # A float32 run: 6 SGD steps, momentum 0.9, batches of 8 in file order.
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
    losses = []
    for step in range(6):
        i = (step % 2) * 8
        opt.zero_grad()
        l = F.cross_entropy(model(x[i:i + 8]), y[i:i + 8])
        l.backward()
        opt.step()
        losses.append(l.item())
    t['losses'] = torch.tensor(losses, dtype=torch.float64)
    for k, v in model.state_dict().items():
        t[f'final.{k}'] = v.float() if v.is_floating_point() else v
    meta = {'steps': '6', 'lr': '0.002', 'momentum': '0.9', 'batch_size': '8',
            'torch': torch.__version__, 'names': json.dumps(list(init))}
    save_file({k: v.contiguous() for k, v in t.items()}, path, metadata=meta)
    print(f'wrote {path}: {len(t)} tensors, losses {losses}')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--load')
    ap.add_argument('--fixture')
    a = ap.parse_args()
    if a.load:
        load(a.load)
    if a.fixture:
        fixture(a.fixture)
    if not (a.load or a.fixture):
        ap.print_help()


if __name__ == '__main__':
    main()
