#!/usr/bin/env python3
"""The PyTorch twin of examples/residual_mlp.rs: the same residual MLP and
recipe (Adam 1e-3, batches of 64 shuffled each epoch, 3 epochs), written as
a PyTorch user writes it, to compare the two programs line for line (see
README.md). `python3 tools/residual_mlp_twin.py` (needs torch, numpy).
"""
import gzip
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def idx(path):
    data = gzip.open(path).read()
    dims = np.frombuffer(data, '>u4', data[3], 4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(dims)


class Block(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.fc1 = nn.Linear(w, w)
        self.fc2 = nn.Linear(w, w)

    def forward(self, x):
        return x + self.fc2(F.relu(self.fc1(x)))


torch.manual_seed(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), Block(128), Block(128), nn.Linear(128, 10))
x = torch.tensor(idx('data/mnist/train-images-idx3-ubyte.gz'), dtype=torch.float32) / 255
y = torch.tensor(idx('data/mnist/train-labels-idx1-ubyte.gz').astype(np.int64))
xt = torch.tensor(idx('data/mnist/t10k-images-idx3-ubyte.gz'), dtype=torch.float32) / 255
yt = torch.tensor(idx('data/mnist/t10k-labels-idx1-ubyte.gz').astype(np.int64))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
for epoch in range(3):
    net.train()
    perm = torch.randperm(len(x))
    for i in range(0, len(x), 64):
        batch = perm[i:i + 64]
        loss = F.cross_entropy(net(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(xt).argmax(1) == yt).float().mean().item()
    print(f'epoch {epoch + 1}: test accuracy {100 * acc:.2f}%')
