#!/usr/bin/env python3
"""Generate the PyTorch reference fixtures used by the Rust tests of `backprop`.

Run from the repository root:

    python3 tools/make_fixtures.py

Needs `torch`, `numpy` and `safetensors` (CPU build is enough) and the MNIST
IDX files in ../shared/data/mnist (or pass --mnist DIR). It is NOT run by CI:
its outputs are committed under tests/fixtures/. Every case seeds
torch.manual_seed itself, so rerunning reproduces the same files (up to
PyTorch version differences).

It writes (all safetensors, metadata values are strings):

* tests/fixtures/ops.safetensors -- op gradient fixtures. For each case <c>:
  `<c>.x0`, `<c>.x1`, ... inputs (float32), `<c>.labels` (int64 class labels,
  not differentiated, only for cross_entropy with labels), `<c>.r` upstream
  gradient (float32, shape of the output), `<c>.out` forward output and
  `<c>.g0`, `<c>.g1`, ... gradients of L = sum(out * r) w.r.t. the
  differentiated inputs, both float64, computed in float64 from the
  float32-rounded inputs. Inputs that are targets (args.target_input) get no g.
  Metadata: `<c>` -> JSON {"op": ..., "args": {...}}, `cases` -> JSON list.

* tests/fixtures/ops_layers.safetensors -- the same format for layer ops:
  conv2d (F.conv2d; x0 input [N,C,H,W], x1 weight [O,C,kh,kw], x2 bias [O]
  unless args.bias is false; args stride, padding as [h,w]), max_pool2d (args
  kernel, stride, padding as [h,w]; one case with tied window maxima, whose
  gradient PyTorch routes to the first maximum in row-major scan order),
  batch_norm (F.batch_norm with x1 weight, x2 bias, momentum 0.1, eps 1e-5 and
  args.training; the given running statistics are stored as
  `<c>.running_mean` / `<c>.running_var` (float32) and, for training cases,
  PyTorch's updated ones as `<c>.new_running_mean` / `<c>.new_running_var`
  (float64, unbiased batch variance)) and rnn_tanh (nn.RNN(F, H,
  batch_first=True) with x1 weight_ih [H,F], x2 weight_hh [H,H], x3 bias_ih
  [H], x4 bias_hh [H], zero initial state; out = hn[-1], [B,H]).

* tests/fixtures/ops_seq.safetensors -- the same format for the ops of
  sequence models: gelu (F.gelu, exact and approximate='tanh'), silu,
  layer_norm (F.layer_norm over the last axis, x1 weight, x2 bias, eps 1e-5),
  embedding (F.embedding; x0 holds the ids as floats and is args.target_input),
  causal_attention (F.scaled_dot_product_attention(q, k, v, is_causal=True),
  x0..x2 = q, k, v), narrow (x.narrow(axis, start, len)), concat (torch.cat)
  and cross_entropy_seq (F.cross_entropy of x0 [N, T, C] reshaped to rows
  against `<c>.labels`, with args ignore_index, label_smoothing and weight).
  `python3 tools/make_fixtures.py --only seq` writes this file alone.

* tests/fixtures/ops_image.safetensors -- the same format for the layers of
  today's image nets: avg_pool2d (F.avg_pool2d, args kernel, stride, padding
  as [h,w]; count_include_pad=True), adaptive_avg_pool2d
  (F.adaptive_avg_pool2d, args out [h,w]) and conv2d_ext (F.conv2d with args
  stride, padding, dilation as [h,w] and groups; x1 weight [O, C/groups, kh,
  kw], x2 bias). `python3 tools/make_fixtures.py --only image` writes it alone.

* tests/fixtures/train_<case>.safetensors -- short training runs of an
  nn.Sequential in float32: `x`, `y` (int64 labels), `init.<name>` /
  `final.<name>` for every state_dict entry before / after training, `losses`
  (float32 [K], loss of each step before its update). Metadata: spec,
  optimizer, lr, momentum, nesterov, weight_decay, loss, batch_size, steps,
  clip_grad_norm, clip_grad_value (and betas/eps/alpha when non-default), plus
  n, seed, torch_version. Batches are taken in order without shuffling,
  batch i of an epoch is rows [i*B, min((i+1)*B, N)) (the last partial batch
  is kept), and the next epoch restarts at row 0. The model is in train mode
  during the run; `init.` / `final.` include buffers (BatchNorm's
  running_mean, running_var and num_batches_tracked, int64 shape []). Cases
  with BatchNorm also hold `eval_logits` (float32 [8,10]): the trained model's
  output in eval mode on x[:8]. Spec layers: linear(i,o), relu, sigmoid, tanh,
  leaky_relu(s), prelu, elu(a), softmax, log_softmax, flatten,
  conv2d(i,o,k,stride=s,padding=p) (nn.Conv2d), maxpool2d(k) (nn.MaxPool2d),
  batchnorm1d(n), batchnorm2d(n), reshape(a,b,...) (per-sample reshape, no
  state) and rnn(F,H) (nn.RNN(F,H,batch_first=True) returning hn[-1]; its
  state_dict keys are <i>.weight_ih_l0, <i>.weight_hh_l0, <i>.bias_ih_l0,
  <i>.bias_hh_l0); layer i of the spec is index i of the nn.Sequential.

* tests/fixtures/torch_mlp.safetensors -- a plain PyTorch state_dict (no
  metadata) of nn.Sequential(Flatten, Linear(784,16), ReLU, Linear(16,10))
  after manual_seed(0), and tests/fixtures/torch_mlp_expected.safetensors with
  `x` (first 8 MNIST test images, [8,1,28,28] float32) and `logits` ([8,10]).
"""
import argparse
import gzip
import json
import math
import os
import re
import struct
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures")
DEFAULT_MNIST = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "mnist"))


def save(tensors, path, metadata=None):
    """safetensors.torch.save_file, then rewrite the JSON header with sorted keys
    (save_file's key order is random), so that reruns give byte-identical files.
    Offsets are relative to the data section, so only the header changes."""
    save_file(tensors, path, metadata=metadata)
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + raw[8 + n:])


def seed_for(name):
    """Stable per-case seed (independent of case order)."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def fmt(v):
    """Number -> metadata string."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v == 0:
        return "0"
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


# ----------------------------------------------------------------------------
# 1. op gradient fixtures
# ----------------------------------------------------------------------------

def _sum_mean(fn):
    def f(xs, args, labels):
        axes = args.get("axes")
        if axes is None:
            return fn(xs[0])
        return fn(xs[0], dim=tuple(axes), keepdim=args.get("keepdim", False))
    return f


OPS = {
    "add": lambda xs, a, l: xs[0] + xs[1],
    "sub": lambda xs, a, l: xs[0] - xs[1],
    "mul": lambda xs, a, l: xs[0] * xs[1],
    "div": lambda xs, a, l: xs[0] / xs[1],
    "matmul": lambda xs, a, l: torch.matmul(xs[0], xs[1]),
    "sum": _sum_mean(torch.sum),
    "mean": _sum_mean(torch.mean),
    "reshape": lambda xs, a, l: torch.reshape(xs[0], a["shape"]),
    "transpose": lambda xs, a, l: torch.transpose(xs[0], a["dim0"], a["dim1"]),
    "sigmoid": lambda xs, a, l: torch.sigmoid(xs[0]),
    "tanh": lambda xs, a, l: torch.tanh(xs[0]),
    "exp": lambda xs, a, l: torch.exp(xs[0]),
    "log": lambda xs, a, l: torch.log(xs[0]),
    "relu": lambda xs, a, l: F.relu(xs[0]),
    "leaky_relu": lambda xs, a, l: F.leaky_relu(xs[0], a["slope"]),
    "elu": lambda xs, a, l: F.elu(xs[0], a["alpha"]),
    "prelu": lambda xs, a, l: F.prelu(xs[0], xs[1]),
    "softmax": lambda xs, a, l: F.softmax(xs[0], dim=a["dim"]),
    "log_softmax": lambda xs, a, l: F.log_softmax(xs[0], dim=a["dim"]),
    "linear": lambda xs, a, l: F.linear(xs[0], xs[1], xs[2]),
    "mse_loss": lambda xs, a, l: F.mse_loss(xs[0], xs[1], reduction=a["reduction"]),
    "binary_cross_entropy": lambda xs, a, l: F.binary_cross_entropy(xs[0], xs[1], reduction=a["reduction"]),
    "binary_cross_entropy_with_logits":
        lambda xs, a, l: F.binary_cross_entropy_with_logits(xs[0], xs[1], reduction=a["reduction"]),
    "cross_entropy":
        lambda xs, a, l: F.cross_entropy(xs[0], l if l is not None else xs[1], reduction=a["reduction"]),
}


def _cross_entropy_seq(xs, a, l):
    z = xs[0]
    w = torch.tensor(a["weight"], dtype=z.dtype) if a.get("weight") else None
    ii = a.get("ignore_index")
    return F.cross_entropy(z.reshape(-1, z.shape[-1]), l.reshape(-1), weight=w,
                           ignore_index=-100 if ii is None else ii,
                           label_smoothing=a.get("label_smoothing", 0.0))


def _gated(kind):
    """nn.LSTM / nn.GRU (batch_first) with xs[1:] as its parameters, layer by
    layer (weight_ih, weight_hh, bias_ih, bias_hh): every step's output."""
    def f(xs, a, l):
        layers = (len(xs) - 1) // 4
        g = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
        hidden = xs[2].shape[1]
        cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind]
        m = cls(xs[0].shape[-1], hidden, num_layers=layers, batch_first=True).double()
        names = [f"{w}_l{k}" for k in range(layers)
                 for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        assert all(xs[1 + i].shape[0] == g * hidden for i in range(len(names)))
        return torch.func.functional_call(m, dict(zip(names, xs[1:])), (xs[0],))[0]
    return f


def _nll(xs, a, l):
    z = xs[0]
    w = torch.tensor(a["weight"], dtype=z.dtype) if a.get("weight") else None
    ii = a.get("ignore_index")
    return F.nll_loss(z.reshape(-1, z.shape[-1]), l.reshape(-1), weight=w,
                      ignore_index=-100 if ii is None else ii)


SEQ_OPS = {
    "permute": lambda xs, a, l: xs[0].permute(*a["dims"]),
    "stack": lambda xs, a, l: torch.stack(xs, a["axis"]),
    "index_select": lambda xs, a, l: torch.index_select(xs[0], a["axis"], torch.tensor(a["ids"])),
    "gather": lambda xs, a, l: torch.gather(
        xs[0], a["axis"], torch.tensor(a["index"]).reshape(a["index_shape"])),
    "masked_fill": lambda xs, a, l: xs[0].masked_fill(
        torch.tensor(a["mask"]).reshape(a["mask_shape"]).bool(), a["value"]),
    "softmax_axis": lambda xs, a, l: F.softmax(xs[0], dim=a["axis"]),
    "log_softmax_axis": lambda xs, a, l: F.log_softmax(xs[0], dim=a["axis"]),
    "sqrt": lambda xs, a, l: torch.sqrt(xs[0]),
    "abs": lambda xs, a, l: torch.abs(xs[0]),
    "pow": lambda xs, a, l: torch.pow(xs[0], a["p"]),
    "clamp": lambda xs, a, l: torch.clamp(xs[0], a["lo"], a["hi"]),
    "maximum": lambda xs, a, l: torch.maximum(xs[0], xs[1]),
    "minimum": lambda xs, a, l: torch.minimum(xs[0], xs[1]),
    "l1_loss": lambda xs, a, l: F.l1_loss(xs[0], xs[1]),
    "huber_loss": lambda xs, a, l: F.huber_loss(xs[0], xs[1], delta=a["delta"]),
    "nll_loss": _nll,
    "lstm": _gated("lstm"),
    "gru": _gated("gru"),
    "rnn_seq": _gated("rnn"),
    "gelu": lambda xs, a, l: F.gelu(xs[0], approximate=a.get("approximate", "none")),
    "silu": lambda xs, a, l: F.silu(xs[0]),
    "layer_norm": lambda xs, a, l: F.layer_norm(xs[0], [xs[0].shape[-1]], xs[1], xs[2], eps=1e-5),
    "embedding": lambda xs, a, l: F.embedding(xs[0].detach().long(), xs[1]),
    "causal_attention": lambda xs, a, l: F.scaled_dot_product_attention(xs[0], xs[1], xs[2], is_causal=True),
    "narrow": lambda xs, a, l: xs[0].narrow(a["axis"], a["start"], a["len"]),
    "concat": lambda xs, a, l: torch.cat(xs, a["axis"]),
    "cross_entropy_seq": _cross_entropy_seq,
}


def seq_cases():
    """Yields (name, op, args, make_inputs) for ops_seq.safetensors."""
    yield "gelu", "gelu", {}, lambda: ([randn(4, 6) * 2], None)
    yield "gelu_tanh", "gelu", {"approximate": "tanh"}, lambda: ([randn(4, 6) * 2], None)
    yield "silu", "silu", {}, lambda: ([randn(4, 6) * 2], None)
    yield ("layer_norm", "layer_norm", {},
           lambda: ([randn(3, 4, 6) * 2 + 0.5, 1.0 + 0.3 * randn(6), 0.5 * randn(6)], None))

    def emb():
        ids = torch.randint(0, 7, (3, 5)).to(torch.float32)
        return [ids, randn(7, 4)], None
    yield "embedding", "embedding", {"target_input": 0}, emb
    yield ("causal_attention", "causal_attention", {},
           lambda: ([randn(2, 3, 5, 4), randn(2, 3, 5, 4), randn(2, 3, 5, 4)], None))
    yield ("causal_attention_long", "causal_attention", {},
           lambda: ([randn(1, 2, 17, 8), randn(1, 2, 17, 8), randn(1, 2, 17, 8)], None))
    def gated(g, layers, n=2, t=5, f=3, h=4):
        def mk():
            xs = [randn(n, t, f)]
            for k in range(layers):
                fin = f if k == 0 else h
                xs += [0.5 * randn(g * h, fin), 0.5 * randn(g * h, h), 0.3 * randn(g * h), 0.3 * randn(g * h)]
            return xs, None
        return mk
    yield "lstm", "lstm", {}, gated(4, 1)
    yield "lstm_2layers", "lstm", {}, gated(4, 2)
    yield "lstm_t1", "lstm", {}, gated(4, 1, t=1)
    yield "gru", "gru", {}, gated(3, 1)
    yield "gru_2layers", "gru", {}, gated(3, 2)
    yield "rnn_seq_2layers", "rnn_seq", {}, gated(1, 2)
    yield "narrow", "narrow", {"axis": 1, "start": 1, "len": 3}, lambda: ([randn(3, 5, 2)], None)
    yield "permute", "permute", {"dims": [2, 0, 1]}, lambda: ([randn(2, 3, 4)], None)
    yield "stack", "stack", {"axis": 1}, lambda: ([randn(2, 3), randn(2, 3), randn(2, 3)], None)
    yield ("index_select", "index_select", {"axis": 1, "ids": [3, 0, 3, 1]},
           lambda: ([randn(2, 4, 3)], None))
    yield ("gather", "gather",
           {"axis": 1, "index": [2, 0, 2, 2, 1, 0, 1, 2, 0, 0, 1, 2, 2, 1, 0, 0],
            "index_shape": [1, 4, 4]},
           lambda: ([randn(2, 3, 4)], None))
    yield ("gather_last", "gather", {"axis": 2, "index": [3, 3, 0, 1, 2, 2], "index_shape": [2, 3, 1]},
           lambda: ([randn(2, 3, 4)], None))
    yield ("masked_fill_causal", "masked_fill",
           {"mask": [0, 1, 1, 0, 0, 1, 0, 0, 0], "mask_shape": [3, 3], "value": -1e9},
           lambda: ([randn(2, 3, 3)], None))
    yield "softmax_axis1", "softmax_axis", {"axis": 1}, lambda: ([randn(2, 4, 3)], None)
    yield "log_softmax_axis0", "log_softmax_axis", {"axis": 0}, lambda: ([randn(3, 4)], None)
    yield "sqrt", "sqrt", {}, lambda: ([randn(4, 5).abs() + 0.3], None)
    yield "abs_zeros", "abs", {}, lambda: ([with_zeros(randn(4, 5), 4)], None)
    yield "pow3", "pow", {"p": 3.0}, lambda: ([randn(4, 5)], None)
    yield "pow_half", "pow", {"p": 0.5}, lambda: ([randn(4, 5).abs() + 0.3], None)
    yield "clamp", "clamp", {"lo": -0.5, "hi": 0.8}, lambda: ([randn(4, 5) * 2], None)

    def pair_with_ties():
        a = randn(4, 5)
        b = randn(4, 5)
        b.view(-1)[::3] = a.view(-1)[::3]
        return [a, b], None
    yield "maximum_ties", "maximum", {}, pair_with_ties
    yield "minimum_ties", "minimum", {}, pair_with_ties
    yield "l1_loss", "l1_loss", {}, lambda: ([randn(4, 5), randn(4, 5)], None)
    yield "huber_loss", "huber_loss", {"delta": 1.0}, lambda: ([randn(4, 5) * 2, randn(4, 5)], None)
    yield "huber_loss_small", "huber_loss", {"delta": 0.3}, lambda: ([randn(4, 5), randn(4, 5)], None)

    def nll():
        return [torch.log_softmax(randn(2, 5, 4), -1)], torch.randint(0, 4, (2, 5))
    yield "nll_loss", "nll_loss", {}, nll
    yield "nll_loss_all", "nll_loss", {"ignore_index": 1, "weight": [0.5, 2.0, 1.0, 1.5]}, nll
    yield "concat", "concat", {"axis": 1}, lambda: ([randn(2, 3, 2), randn(2, 1, 2), randn(2, 2, 2)], None)

    def ce(n, t, c):
        def mk():
            return [randn(n, t, c) * 2], torch.randint(0, c, (n, t))
        return mk
    yield "cross_entropy_seq", "cross_entropy_seq", {}, ce(2, 5, 7)
    yield "cross_entropy_seq_ignore", "cross_entropy_seq", {"ignore_index": 3}, ce(2, 5, 4)
    yield "cross_entropy_seq_smooth", "cross_entropy_seq", {"label_smoothing": 0.1}, ce(2, 5, 7)
    yield ("cross_entropy_seq_all", "cross_entropy_seq",
           {"ignore_index": 0, "label_smoothing": 0.2, "weight": [0.5, 2.0, 1.0, 1.5]}, ce(3, 4, 4))


def randn(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def uniform(lo, hi, *shape):
    return torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo


def with_zeros(x, k):
    """Set k distinct (deterministically chosen) entries of x to exactly 0.0."""
    flat = x.reshape(-1).clone()
    idx = torch.randperm(flat.numel())[:k]
    flat[idx] = 0.0
    return flat.reshape(x.shape)


def op_cases():
    """Yields (name, op, args, make_inputs) where make_inputs() -> (inputs, labels)."""
    bshapes = [("same", [3, 4], [3, 4]), ("bcast_row", [3, 4], [4]),
               ("bcast_3d", [2, 3, 4], [3, 1]), ("outer", [4, 1], [1, 5])]
    for op in ["add", "sub", "mul", "div"]:
        for tag, sa, sb in bshapes:
            if op == "div":
                def mk(sa=sa, sb=sb):
                    a = randn(*sa)
                    mag = uniform(0.5, 2.0, *sb)
                    sign = torch.where(torch.rand(*sb) < 0.5, -1.0, 1.0)
                    return [a, mag * sign], None
            else:
                def mk(sa=sa, sb=sb):
                    return [randn(*sa), randn(*sb)], None
            yield f"{op}_{tag}", op, {}, mk

    yield "matmul_2d", "matmul", {}, lambda: ([randn(5, 7), randn(7, 3)], None)
    yield "matmul_batched", "matmul", {}, lambda: ([randn(2, 5, 7), randn(2, 7, 3)], None)
    yield "matmul_bcast_rhs", "matmul", {}, lambda: ([randn(2, 5, 7), randn(7, 3)], None)

    for op in ["sum", "mean"]:
        yield f"{op}_all", op, {"axes": None}, lambda: ([randn(3, 4, 5)], None)
        yield f"{op}_axis1", op, {"axes": [1], "keepdim": False}, lambda: ([randn(3, 4, 5)], None)
        yield f"{op}_axis1_keepdim", op, {"axes": [1], "keepdim": True}, lambda: ([randn(3, 4, 5)], None)
        yield f"{op}_axes02", op, {"axes": [0, 2], "keepdim": False}, lambda: ([randn(3, 4, 5)], None)

    yield "reshape", "reshape", {"shape": [2, 6]}, lambda: ([randn(3, 4)], None)
    yield "transpose", "transpose", {"dim0": 1, "dim1": 2}, lambda: ([randn(3, 4, 5)], None)

    yield "sigmoid", "sigmoid", {}, lambda: ([randn(4, 5) * 3], None)
    yield "tanh", "tanh", {}, lambda: ([randn(4, 5) * 2], None)
    yield "exp", "exp", {}, lambda: ([randn(4, 5)], None)
    yield "log", "log", {}, lambda: ([uniform(0.1, 3.0, 4, 5)], None)
    yield "relu_zeros", "relu", {}, lambda: ([with_zeros(randn(4, 5), 5)], None)
    yield "leaky_relu_zeros", "leaky_relu", {"slope": 0.01}, lambda: ([with_zeros(randn(4, 5), 5)], None)
    yield "elu", "elu", {"alpha": 1.0}, lambda: ([randn(4, 5) * 2], None)
    yield "prelu_scalar", "prelu", {}, lambda: ([randn(4, 5), 0.25 + 0.05 * randn(1)], None)
    yield "prelu_channel", "prelu", {}, lambda: ([randn(4, 3), 0.25 + 0.05 * randn(3)], None)

    def mk_softmax():
        x = randn(4, 6)
        x[2] += 80.0
        return [x], None
    yield "softmax", "softmax", {"dim": -1}, mk_softmax
    yield "log_softmax", "log_softmax", {"dim": -1}, mk_softmax

    yield "linear", "linear", {}, lambda: ([randn(5, 7), randn(3, 7), randn(3)], None)

    yield ("mse_loss", "mse_loss", {"target_input": 1, "reduction": "mean"},
           lambda: ([randn(6, 4), randn(6, 4)], None))

    def mk_bce():
        p = uniform(0.02, 0.98, 6, 3)
        t = (torch.rand(6, 3) < 0.5).float()
        p[0, 0], t[0, 0] = 0.0, 0.0   # exact 0 prob, agreeing target
        p[1, 2], t[1, 2] = 1.0, 1.0   # exact 1 prob, agreeing target
        return [p, t], None
    yield "bce", "binary_cross_entropy", {"target_input": 1, "reduction": "mean"}, mk_bce

    def mk_bce_logits():
        x = randn(6, 3) * 3
        t = (torch.rand(6, 3) < 0.5).float()
        x[0, 0], x[0, 1], x[3, 2], x[5, 0] = 60.0, -75.0, 55.5, -52.0
        t[0, 0], t[0, 1], t[3, 2], t[5, 0] = 0.0, 0.0, 1.0, 1.0
        return [x, t], None
    yield ("bce_logits", "binary_cross_entropy_with_logits", {"target_input": 1, "reduction": "mean"},
           mk_bce_logits)

    yield ("cross_entropy_labels", "cross_entropy", {"reduction": "mean"},
           lambda: ([randn(6, 5) * 2], torch.randint(0, 5, (6,), dtype=torch.int64)))

    def mk_ce_probs():
        x = randn(6, 5) * 2
        lab = torch.randint(0, 5, (6,))
        t = F.softmax(randn(6, 5), dim=1)
        t[:3] = F.one_hot(lab[:3], 5).float()   # rows 0..2 one-hot, rows 3..5 soft
        return [x, t], None
    yield ("cross_entropy_probs", "cross_entropy", {"target_input": 1, "reduction": "mean"}, mk_ce_probs)


# Layer ops (tests/fixtures/ops_layers.safetensors). Signature (xs, args, state):
# state holds float64 copies of the case's running statistics (batch_norm).

def _conv2d(xs, a, st):
    return F.conv2d(xs[0], xs[1], xs[2] if len(xs) > 2 else None, stride=tuple(a["stride"]),
                    padding=tuple(a["padding"]))


def _batch_norm(xs, a, st):
    return F.batch_norm(xs[0], st["running_mean"], st["running_var"], weight=xs[1], bias=xs[2],
                        training=a["training"], momentum=0.1, eps=1e-5)


def _rnn_tanh(xs, a, st):
    """nn.RNN(F, H, batch_first=True) with its weights replaced by x1..x4; the last
    hidden state hn[-1] [B, H] (initial hidden state zero)."""
    x, w_ih, w_hh, b_ih, b_hh = xs
    rnn = nn.RNN(w_ih.shape[1], w_ih.shape[0], batch_first=True).double()
    ps = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh}
    _, hn = torch.func.functional_call(rnn, ps, (x,))
    # cross-check with the textbook recurrence h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    with torch.no_grad():
        h = torch.zeros(x.shape[0], w_ih.shape[0], dtype=x.dtype)
        for t in range(x.shape[1]):
            h = torch.tanh(x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
        assert torch.allclose(hn[-1], h, rtol=1e-12, atol=1e-12)
    return hn[-1]


LAYER_OPS = {
    "conv2d": _conv2d,
    "max_pool2d": lambda xs, a, st: F.max_pool2d(xs[0], tuple(a["kernel"]), tuple(a["stride"]),
                                                 tuple(a["padding"])),
    "batch_norm": _batch_norm,
    "rnn_tanh": _rnn_tanh,
}


IMAGE_OPS = {
    "avg_pool2d": lambda xs, a, st: F.avg_pool2d(xs[0], tuple(a["kernel"]), tuple(a["stride"]),
                                                 tuple(a["padding"])),
    "adaptive_avg_pool2d": lambda xs, a, st: F.adaptive_avg_pool2d(xs[0], tuple(a["out"])),
    "conv2d_ext": lambda xs, a, st: F.conv2d(xs[0], xs[1], xs[2], stride=tuple(a["stride"]),
                                             padding=tuple(a["padding"]),
                                             dilation=tuple(a["dilation"]), groups=a["groups"]),
}


def image_cases():
    """Yields (name, op, args, make_inputs) for ops_image.safetensors."""
    def pool(k, s, p):
        return {"kernel": [k, k], "stride": [s, s], "padding": [p, p]}
    yield "avg_pool2d_k2s2", "avg_pool2d", pool(2, 2, 0), lambda: ([randn(2, 3, 6, 6)], None)
    yield "avg_pool2d_k3s2_pad1", "avg_pool2d", pool(3, 2, 1), lambda: ([randn(1, 2, 7, 7)], None)
    yield "avg_pool2d_k3s1", "avg_pool2d", pool(3, 1, 0), lambda: ([randn(2, 1, 5, 6)], None)
    yield "adaptive_avg_pool2d_global", "adaptive_avg_pool2d", {"out": [1, 1]}, \
        lambda: ([randn(3, 4, 5, 5)], None)
    yield "adaptive_avg_pool2d_3x2", "adaptive_avg_pool2d", {"out": [3, 2]}, \
        lambda: ([randn(2, 2, 7, 5)], None)
    yield "adaptive_avg_pool2d_up", "adaptive_avg_pool2d", {"out": [4, 4]}, \
        lambda: ([randn(1, 2, 3, 3)], None)

    def conv(n, c, h, w, o, k, groups, **a):
        args = {"stride": [1, 1], "padding": [0, 0], "dilation": [1, 1], "groups": groups}
        args.update(a)
        return args, lambda: ([randn(n, c, h, w), randn(o, c // groups, k, k) * 0.5,
                               randn(o) * 0.5], None)
    for name, (args, mk) in {
        "conv2d_groups2": conv(2, 4, 6, 6, 6, 3, 2, padding=[1, 1]),
        "conv2d_depthwise": conv(2, 3, 5, 5, 3, 3, 3, padding=[1, 1]),
        "conv2d_dilation2": conv(1, 2, 8, 8, 3, 3, 1, padding=[2, 2], dilation=[2, 2]),
        "conv2d_dilation_groups_stride": conv(2, 4, 9, 9, 4, 3, 2, stride=[2, 2], padding=[1, 1],
                                              dilation=[2, 2]),
    }.items():
        yield name, "conv2d_ext", args, mk


def layer_cases():
    """Yields (name, op, args, make_inputs) where make_inputs() -> (inputs, state or None)."""
    def conv(n, c, h, w, o, kh, kw, bias=True):
        def mk():
            xs = [randn(n, c, h, w), randn(o, c, kh, kw) * 0.5]
            if bias:
                xs.append(randn(o) * 0.5)
            return xs, None
        return mk
    yield "conv2d_basic", "conv2d", {"stride": [1, 1], "padding": [0, 0]}, conv(2, 1, 6, 6, 3, 3, 3)
    yield "conv2d_stride2_pad1", "conv2d", {"stride": [2, 2], "padding": [1, 1]}, conv(2, 2, 7, 7, 4, 3, 3)
    yield "conv2d_pad2_k5", "conv2d", {"stride": [1, 1], "padding": [2, 2]}, conv(1, 3, 5, 5, 2, 5, 5)
    yield "conv2d_rect_kernel", "conv2d", {"stride": [1, 1], "padding": [0, 0]}, conv(2, 2, 6, 5, 3, 2, 3)
    yield ("conv2d_no_bias", "conv2d", {"stride": [1, 1], "padding": [1, 1], "bias": False},
           conv(2, 2, 5, 5, 3, 3, 3, bias=False))

    def pool_args(k, s, p):
        return {"kernel": [k, k], "stride": [s, s], "padding": [p, p]}
    yield "max_pool2d_k2s2", "max_pool2d", pool_args(2, 2, 0), lambda: ([randn(2, 3, 6, 6)], None)
    yield "max_pool2d_k3s2_overlap", "max_pool2d", pool_args(3, 2, 0), lambda: ([randn(1, 2, 7, 7)], None)
    yield "max_pool2d_k3s1_pad1", "max_pool2d", pool_args(3, 1, 1), lambda: ([randn(1, 1, 5, 5)], None)
    # Every 2x2 window holds its maximum more than once; PyTorch routes the gradient
    # to the first one in row-major scan order (checked in main()).
    ties = torch.tensor([[3., 3., 1., 5.],
                         [1., 3., 5., 0.],
                         [2., 2., -1., 1.],
                         [2., 2., 6., 6.]]).reshape(1, 1, 4, 4)
    yield "max_pool2d_ties", "max_pool2d", pool_args(2, 2, 0), lambda: ([ties.clone()], None)

    def bn(shape):
        def mk():
            c = shape[1]
            x = randn(*shape) * 1.5 + 0.5
            w, b = 1.0 + 0.3 * randn(c), 0.5 * randn(c)
            st = {"running_mean": 0.5 * randn(c), "running_var": uniform(0.5, 2.0, c)}
            return [x, w, b], st
        return mk
    yield "batch_norm_train_2d", "batch_norm", {"training": True}, bn([8, 5])
    yield "batch_norm_eval_2d", "batch_norm", {"training": False}, bn([8, 5])
    yield "batch_norm_train_4d", "batch_norm", {"training": True}, bn([4, 3, 5, 5])
    yield "batch_norm_eval_4d", "batch_norm", {"training": False}, bn([4, 3, 5, 5])
    yield "batch_norm_eval_batch1", "batch_norm", {"training": False}, bn([1, 5])

    def rnn(b, t, f, h):
        def mk():
            k = 1.0 / math.sqrt(h)   # nn.RNN's own init range
            return [randn(b, t, f), uniform(-k, k, h, f), uniform(-k, k, h, h),
                    uniform(-k, k, h), uniform(-k, k, h)], None
        return mk
    yield "rnn_tanh_t1", "rnn_tanh", {}, rnn(3, 1, 4, 5)
    yield "rnn_tanh_t6", "rnn_tanh", {}, rnn(3, 6, 4, 5)
    yield "rnn_tanh_t20", "rnn_tanh", {}, rnn(2, 20, 3, 4)


def make_ops(path, cases=op_cases, table=OPS):
    """make_inputs() returns (inputs, extra): for `table` OPS, extra is the int64
    labels or None; for LAYER_OPS it is a dict of float32 state tensors (BatchNorm's
    running_mean / running_var) or None. The state is stored as `<c>.<key>`, handed
    to the op as float64 copies, and, when the op updated it (args.training), stored
    again afterwards as `<c>.new_<key>` (float64)."""
    tensors, meta, names = {}, {}, []
    for name, op, args, mk in cases():
        torch.manual_seed(seed_for(name))
        xs32, extra = mk()
        xs32 = [x.to(torch.float32).contiguous() for x in xs32]
        tgt = args.get("target_input")
        xs64 = [x.double().requires_grad_(i != tgt) for i, x in enumerate(xs32)]
        if table is OPS or table is SEQ_OPS or table is IMAGE_OPS:
            labels, state32, state64 = extra, {}, {}
            out = table[op](xs64, args, labels)
        else:
            labels = None
            state32 = {k: v.to(torch.float32).contiguous() for k, v in (extra or {}).items()}
            state64 = {k: v.double().clone() for k, v in state32.items()}
            out = table[op](xs64, args, state64)
        r32 = torch.randn(out.shape, dtype=torch.float32)
        loss = (out * r32.double()).sum()
        diff = [x for x in xs64 if x.requires_grad]
        grads = torch.autograd.grad(loss, diff)
        for i, x in enumerate(xs32):
            tensors[f"{name}.x{i}"] = x.clone()
        if labels is not None:
            tensors[f"{name}.labels"] = labels.to(torch.int64).contiguous()
        for k, v in state32.items():
            tensors[f"{name}.{k}"] = v.clone()
            if args.get("training"):
                assert not torch.equal(state64[k], v.double()), f"{name}: {k} not updated"
                tensors[f"{name}.new_{k}"] = state64[k].detach().clone().contiguous()
        tensors[f"{name}.r"] = r32.contiguous()
        tensors[f"{name}.out"] = out.detach().clone().contiguous()
        gi = iter(grads)
        for i, x in enumerate(xs64):
            if x.requires_grad:
                tensors[f"{name}.g{i}"] = next(gi).detach().clone().contiguous()
        meta[name] = json.dumps({"op": op, "args": args})
        names.append(name)
        assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads), name
    meta["cases"] = json.dumps(names)
    save(tensors, path, metadata=meta)
    print(f"{os.path.relpath(path, ROOT)}: {len(names)} op cases, {len(tensors)} tensors, "
          f"{os.path.getsize(path)} bytes")
    for n in names:
        print(f"  {n}: {meta[n]}")
    return tensors


# ----------------------------------------------------------------------------
# 2. training-run fixtures
# ----------------------------------------------------------------------------

class Reshape(nn.Module):
    """Per-sample reshape: [N, ...] -> [N, *shape]. No state."""

    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class RNNLast(nn.RNN):
    """nn.RNN(F, H, batch_first=True) whose output is the last hidden state hn[-1]
    [N, H]. A subclass rather than a wrapper, so that its state_dict keys are
    nn.RNN's own (`<i>.weight_ih_l0`, `<i>.weight_hh_l0`, `<i>.bias_ih_l0`,
    `<i>.bias_hh_l0`) with no extra prefix."""

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size, batch_first=True)

    def forward(self, x):
        _, hn = super().forward(x)
        return hn[-1]


def _num(v):
    return float(v) if "." in v else int(v)


def build(spec):
    layers = []
    for m in re.finditer(r"(\w+)(?:\(([^)]*)\))?", spec):
        name, a = m.group(1), m.group(2)
        parts = [v.strip() for v in a.split(",")] if a else []
        args = [_num(v) for v in parts if "=" not in v]
        kw = {k.strip(): _num(v.strip()) for k, v in (p.split("=", 1) for p in parts if "=" in p)}
        if kw and name != "conv2d":
            raise ValueError(f"{name} takes no keyword arguments in {spec}")
        if name == "conv2d":
            layers.append(nn.Conv2d(*args, **kw))
        elif name == "maxpool2d":
            layers.append(nn.MaxPool2d(*args))
        elif name == "batchnorm1d":
            layers.append(nn.BatchNorm1d(*args))
        elif name == "batchnorm2d":
            layers.append(nn.BatchNorm2d(*args))
        elif name == "rnn":
            layers.append(RNNLast(*args))
        elif name == "reshape":
            layers.append(Reshape(*args))
        elif name == "flatten":
            layers.append(nn.Flatten())
        elif name == "linear":
            layers.append(nn.Linear(*args))
        elif name == "relu":
            layers.append(nn.ReLU())
        elif name == "sigmoid":
            layers.append(nn.Sigmoid())
        elif name == "tanh":
            layers.append(nn.Tanh())
        elif name == "leaky_relu":
            layers.append(nn.LeakyReLU(*args))
        elif name == "prelu":
            layers.append(nn.PReLU())
        elif name == "elu":
            layers.append(nn.ELU(*args))
        elif name == "softmax":
            layers.append(nn.Softmax(dim=1))
        elif name == "log_softmax":
            layers.append(nn.LogSoftmax(dim=1))
        else:
            raise ValueError(f"unknown layer {name} in {spec}")
    return nn.Sequential(*layers)


def make_optimizer(params, c):
    o = c["optimizer"]
    if o == "sgd":
        return torch.optim.SGD(params, lr=c["lr"], momentum=c.get("momentum", 0.0),
                               nesterov=c.get("nesterov", False), weight_decay=c.get("weight_decay", 0.0))
    if o == "adam":
        return torch.optim.Adam(params, lr=c["lr"], weight_decay=c.get("weight_decay", 0.0))
    if o == "adamw":
        return torch.optim.AdamW(params, lr=c["lr"], weight_decay=c.get("weight_decay", 0.01))
    if o == "rmsprop":
        return torch.optim.RMSprop(params, lr=c["lr"], momentum=c.get("momentum", 0.0),
                                   weight_decay=c.get("weight_decay", 0.0))
    raise ValueError(o)


def load_idx(path):
    b = gzip.open(path).read()
    magic = struct.unpack(">I", b[:4])[0]
    nd = magic & 0xFF
    dims = struct.unpack(">" + "I" * nd, b[4:4 + 4 * nd])
    return np.frombuffer(b[4 + 4 * nd:], dtype=np.uint8).reshape(dims)


def mnist(d, split, n):
    pre = "train" if split == "train" else "t10k"
    x = load_idx(os.path.join(d, f"{pre}-images-idx3-ubyte.gz"))[:n]
    y = load_idx(os.path.join(d, f"{pre}-labels-idx1-ubyte.gz"))[:n]
    x = torch.tensor(x.astype(np.float32) / 255.0).reshape(n, 1, 28, 28)
    return x.contiguous(), torch.tensor(y.astype(np.int64))


def run_training(case, c, mnist_dir):
    name = f"train_{case}"
    seed = seed_for(name)
    torch.manual_seed(seed)
    spec = c["spec"]
    model = build(spec).float()
    n, B, K = c.get("n", 20), c.get("batch_size", 8), c.get("steps", 7)
    if c.get("mnist"):
        x, y = mnist(mnist_dir, "train", n)
        ncls = 10
    else:
        F_, ncls = c.get("features", 6), c.get("classes", 3)
        x = torch.randn(n, F_, dtype=torch.float32) * c.get("x_scale", 1.0)
        y = torch.randint(0, max(ncls, 2), (n,), dtype=torch.int64)
    lossname = c["loss"]
    if lossname == "cross-entropy":
        lossf, target = nn.CrossEntropyLoss(), y
    else:
        target = F.one_hot(y, ncls).float() if ncls > 1 else y.float().unsqueeze(1)
        lossf = {"mse": nn.MSELoss(), "bce": nn.BCELoss(), "bce-logits": nn.BCEWithLogitsLoss()}[lossname]
    init = {f"init.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    opt = make_optimizer(model.parameters(), c)
    model.train()
    nb = math.ceil(n / B)
    losses, norms, maxabs = [], [], []
    for k in range(K):
        i = k % nb
        lo, hi = i * B, min((i + 1) * B, n)
        opt.zero_grad()
        loss = lossf(model(x[lo:hi]), target[lo:hi])
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        maxabs.append(max(g.abs().max().item() for g in grads))
        if c.get("clip_grad_norm") is not None:
            norms.append(nn.utils.clip_grad_norm_(model.parameters(), c["clip_grad_norm"]).item())
        elif c.get("clip_grad_value") is not None:
            nn.utils.clip_grad_value_(model.parameters(), c["clip_grad_value"])
        opt.step()
        losses.append(loss.item())
    tensors = {"x": x, "y": y, "losses": torch.tensor(losses, dtype=torch.float32)}
    tensors.update(init)
    tensors.update({f"final.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()})
    if c.get("eval_logits"):
        # eval mode: BatchNorm normalises with its running statistics
        model.eval()
        with torch.no_grad():
            tensors["eval_logits"] = model(x[:8]).contiguous()
        model.train()
    meta = {
        "spec": spec, "optimizer": c["optimizer"], "lr": fmt(c["lr"]),
        "momentum": fmt(c.get("momentum", 0.0)), "nesterov": fmt(c.get("nesterov", False)),
        "weight_decay": fmt(c.get("weight_decay", 0.01 if c["optimizer"] == "adamw" else 0.0)),
        "loss": lossname, "batch_size": str(B), "steps": str(K),
        "clip_grad_norm": fmt(c["clip_grad_norm"]) if c.get("clip_grad_norm") is not None else "",
        "clip_grad_value": fmt(c["clip_grad_value"]) if c.get("clip_grad_value") is not None else "",
        "n": str(n), "seed": str(seed), "torch_version": torch.__version__,
    }
    path = os.path.join(OUT_DIR, f"{name}.safetensors")
    save(tensors, path, metadata=meta)
    extra = ""
    if norms:
        extra = f" grad norms (pre-clip, max {c['clip_grad_norm']}): " + ", ".join(f"{v:.3f}" for v in norms)
    if c.get("clip_grad_value") is not None:
        extra = f" max|grad| (pre-clip, clip {c['clip_grad_value']}): " + ", ".join(f"{v:.3f}" for v in maxabs)
    print(f"{os.path.relpath(path, ROOT)}: {spec} {c['optimizer']} lr={meta['lr']} loss={lossname} "
          f"N={n} B={B} K={K} losses {losses[0]:.4f} -> {losses[-1]:.4f}, {os.path.getsize(path)} bytes{extra}")
    return norms, maxabs


TRAIN_CASES = {}
for act in ["relu", "sigmoid", "tanh", "leaky_relu", "prelu", "elu"]:
    TRAIN_CASES[f"act_{act}"] = dict(spec=f"linear(6,8),{act},linear(8,3)", optimizer="sgd", lr=0.1,
                                     loss="cross-entropy")
TRAIN_CASES["loss_mse"] = dict(spec="linear(6,8),tanh,linear(8,3)", optimizer="sgd", lr=0.1, loss="mse")
TRAIN_CASES["loss_bce"] = dict(spec="linear(6,8),tanh,linear(8,3),sigmoid", optimizer="sgd", lr=0.1, loss="bce")
TRAIN_CASES["loss_bce_logits"] = dict(spec="linear(6,8),tanh,linear(8,3)", optimizer="sgd", lr=0.1,
                                      loss="bce-logits")
TRAIN_CASES["loss_mse_single"] = dict(spec="linear(6,8),tanh,linear(8,1)", optimizer="sgd", lr=0.1, loss="mse",
                                      classes=1)
RELU = "linear(6,8),relu,linear(8,3)"
TRAIN_CASES["sgd_momentum"] = dict(spec=RELU, optimizer="sgd", lr=0.1, momentum=0.9, loss="cross-entropy")
TRAIN_CASES["sgd_nesterov"] = dict(spec=RELU, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
                                   loss="cross-entropy")
TRAIN_CASES["sgd_weight_decay"] = dict(spec=RELU, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.01,
                                       loss="cross-entropy")
TRAIN_CASES["adam"] = dict(spec=RELU, optimizer="adam", lr=1e-2, loss="cross-entropy")
TRAIN_CASES["adam_weight_decay"] = dict(spec=RELU, optimizer="adam", lr=1e-2, weight_decay=0.01,
                                        loss="cross-entropy")
TRAIN_CASES["adamw"] = dict(spec=RELU, optimizer="adamw", lr=1e-2, loss="cross-entropy")
TRAIN_CASES["rmsprop"] = dict(spec=RELU, optimizer="rmsprop", lr=1e-2, loss="cross-entropy")
TRAIN_CASES["rmsprop_momentum"] = dict(spec=RELU, optimizer="rmsprop", lr=1e-2, momentum=0.9,
                                       loss="cross-entropy")
# x_scale: larger inputs so that the pre-clip gradient norm exceeds max_norm on most steps
TRAIN_CASES["clip_norm"] = dict(spec=RELU, optimizer="sgd", lr=0.5, clip_grad_norm=0.5, loss="cross-entropy",
                                x_scale=3.0)
TRAIN_CASES["clip_value"] = dict(spec=RELU, optimizer="sgd", lr=0.5, clip_grad_value=0.05, loss="cross-entropy")
TRAIN_CASES["deep"] = dict(spec="linear(6,16),relu,linear(16,16),tanh,linear(16,3)", optimizer="adam", lr=1e-3,
                           loss="cross-entropy", steps=20)
TRAIN_CASES["mnist"] = dict(spec="flatten,linear(784,32),relu,linear(32,10)", optimizer="sgd", lr=0.1,
                            momentum=0.9, loss="cross-entropy", mnist=True, n=200, batch_size=64, steps=6)

LENET = ("conv2d(1,4,5,padding=2),relu,maxpool2d(2),conv2d(4,8,5),relu,maxpool2d(2),flatten,"
         "linear(200,32),relu,linear(32,10)")
MNIST100 = dict(loss="cross-entropy", mnist=True, n=100, batch_size=32)
TRAIN_CASES["lenet_sgd"] = dict(spec=LENET, optimizer="sgd", lr=0.05, momentum=0.9, steps=6, **MNIST100)
TRAIN_CASES["lenet_adam"] = dict(spec=LENET, optimizer="adam", lr=1e-3, steps=5, **MNIST100)
TRAIN_CASES["bn1d"] = dict(spec="flatten,linear(784,32),batchnorm1d(32),relu,linear(32,10)", optimizer="sgd",
                           lr=0.1, momentum=0.9, steps=7, eval_logits=True, **MNIST100)
TRAIN_CASES["bn2d"] = dict(spec="conv2d(1,4,3,padding=1),batchnorm2d(4),relu,maxpool2d(2),flatten,linear(784,10)",
                           optimizer="sgd", lr=0.05, loss="cross-entropy", mnist=True, n=64, batch_size=16,
                           steps=5, eval_logits=True)
RNN = "reshape(28,28),rnn(28,16),linear(16,10)"
TRAIN_CASES["rnn"] = dict(spec=RNN, optimizer="adam", lr=1e-3, steps=6, **MNIST100)
TRAIN_CASES["rnn_sgd"] = dict(spec=RNN, optimizer="sgd", lr=0.1, steps=6, **MNIST100)


def make_torch_mlp(mnist_dir):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))
    p1 = os.path.join(OUT_DIR, "torch_mlp.safetensors")
    save(model.state_dict(), p1)
    x, _ = mnist(mnist_dir, "test", 8)
    with torch.no_grad():
        logits = model(x).contiguous()
    p2 = os.path.join(OUT_DIR, "torch_mlp_expected.safetensors")
    save({"x": x, "logits": logits}, p2)
    print(f"{os.path.relpath(p1, ROOT)}: state_dict {sorted(model.state_dict())}, {os.path.getsize(p1)} bytes")
    print(f"{os.path.relpath(p2, ROOT)}: x {list(x.shape)}, logits {list(logits.shape)}, "
          f"{os.path.getsize(p2)} bytes")


def make_schedules(path):
    """The learning rate at each step (one-cycle) or epoch (cosine, step) of
    PyTorch's schedulers, as float64 sequences; metadata gives each case's
    settings as JSON."""
    out, meta = {}, {}
    cases = {
        "one_cycle_default": dict(kind="one-cycle", lr=0.1, total_steps=50, pct_start=0.3, div_factor=25.0,
                                  final_div_factor=1e4),
        "one_cycle_custom": dict(kind="one-cycle", lr=0.006, total_steps=37, pct_start=0.25, div_factor=10.0,
                                 final_div_factor=100.0),
        "cosine": dict(kind="cosine", lr=0.5, t_max=7, eta_min=0.01, epochs=9),
        "step": dict(kind="step", lr=0.5, step_size=2, gamma=0.5, epochs=8),
    }
    for name, c in cases.items():
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=c["lr"])
        if c["kind"] == "one-cycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=c["lr"], total_steps=c["total_steps"], pct_start=c["pct_start"],
                div_factor=c["div_factor"], final_div_factor=c["final_div_factor"], cycle_momentum=False)
            n = c["total_steps"]
        elif c["kind"] == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, c["t_max"], c["eta_min"])
            n = c["epochs"]
        else:
            sched = torch.optim.lr_scheduler.StepLR(opt, c["step_size"], c["gamma"])
            n = c["epochs"]
        lrs = []
        for _ in range(n):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        out[name] = torch.tensor(lrs, dtype=torch.float64)
        meta[name] = json.dumps(c)
    save(out, path, meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mnist", default=DEFAULT_MNIST, help="directory with the MNIST IDX .gz files")
    ap.add_argument("--only", choices=["seq", "image"], help="write only this fixture file")
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    print(f"torch {torch.__version__}")
    if a.only != "seq":
        make_ops(os.path.join(OUT_DIR, "ops_image.safetensors"), image_cases, IMAGE_OPS)
    if a.only != "image":
        make_ops(os.path.join(OUT_DIR, "ops_seq.safetensors"), seq_cases, SEQ_OPS)
    if a.only:
        return
    make_ops(os.path.join(OUT_DIR, "ops.safetensors"))
    lt = make_ops(os.path.join(OUT_DIR, "ops_layers.safetensors"), layer_cases, LAYER_OPS)
    # the tie case: the gradient of each 2x2 window sits at its first maximum (row-major)
    x, r, g = lt["max_pool2d_ties.x0"][0, 0], lt["max_pool2d_ties.r"][0, 0], lt["max_pool2d_ties.g0"][0, 0]
    want = torch.zeros(4, 4, dtype=torch.float64)
    for i in range(2):
        for j in range(2):
            w = x[2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(-1)
            assert (w == w.max()).sum() > 1, "max_pool2d_ties: window without a tie"
            k = int((w == w.max()).nonzero()[0])
            want[2 * i + k // 2, 2 * j + k % 2] = r[i, j]
    assert torch.equal(g, want), "max_pool2d_ties: gradient not at the first maximum"
    for case, c in TRAIN_CASES.items():
        norms, maxabs = run_training(case, c, a.mnist)
        if c.get("clip_grad_norm") is not None:
            assert any(v > c["clip_grad_norm"] for v in norms), f"{case}: clip_grad_norm never triggered"
        if c.get("clip_grad_value") is not None:
            assert any(v > c["clip_grad_value"] for v in maxabs), f"{case}: clip_grad_value never triggered"
    make_torch_mlp(a.mnist)
    make_schedules(os.path.join(OUT_DIR, "schedules.safetensors"))
    for f in os.listdir(OUT_DIR):
        os.chmod(os.path.join(OUT_DIR, f), 0o644)
    total = sum(os.path.getsize(os.path.join(OUT_DIR, f)) for f in os.listdir(OUT_DIR))
    print(f"total tests/fixtures size: {total} bytes")


if __name__ == "__main__":
    main()
