#!/usr/bin/env python3
"""The PyTorch twin of backprop's GPT (src/nn/gpt.rs): nanoGPT's layout and
names (token and learned position embeddings, pre-norm blocks of causal
self-attention and a 4x GELU MLP, a final layer norm, an output layer tied to
the token embedding), its optimizer groups (AdamW, weight decay on tensors of
two or more dimensions only) and its learning-rate rule (linear warm-up, then
a half cosine down to lr_min).

    python3 tools/gpt_twin.py fixtures            # tests/fixtures/gpt.safetensors
    python3 tools/gpt_twin.py load MODEL.safetensors --data data/shakespeare.txt
    python3 tools/gpt_twin.py bench --data data/shakespeare.txt --steps 2000 --seed 0

`fixtures` writes what tests/gpt.rs compares against:
  fwd.*     a GPT with biases: initial weights (float32), ids [3, 8], targets,
            and in float64 from those float32 weights: the logits, the mean
            cross-entropy, and the gradient of every parameter.
  replay.*  a GPT without biases trained 20 steps in float32 on fixed batches
            with AdamW (betas 0.9/0.99, weight decay 0.1 on matrices), warm-up
            5 steps then cosine to 1e-3 at step 20 from 1e-2, gradient norm
            clipped at 1.0: each step's loss and the final weights.
  lstm.*    the same 20 steps for the model line
            embedding(11,8),lstm(8,16,layers=2),linear(16,11).
`load` reads a model saved by `backprop` into this GPT with a strict
`load_state_dict` and prints its validation loss as `backprop eval` defines it.
`bench` trains nanoGPT's CPU "baby GPT" (4 layers, 4 heads, width 128, context
64, batch 12, lr 1e-3, warm-up 100, cosine to 1e-4, beta2 0.99, weight decay
0.1, clipping 1.0, no dropout), or with `--model char-lstm` backprop's
char-lstm preset on the same recipe, and prints seconds per step and the
validation loss, for BENCHMARKS.md.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")


class Attention(nn.Module):
    def __init__(self, c, heads, bias):
        super().__init__()
        self.c_attn = nn.Linear(c, 3 * c, bias=bias)
        self.c_proj = nn.Linear(c, c, bias=bias)
        self.heads = heads

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(n, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(n, t, c))


class Mlp(nn.Module):
    def __init__(self, c, bias):
        super().__init__()
        self.c_fc = nn.Linear(c, 4 * c, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * c, c, bias=bias)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, c, heads, bias):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c, bias=bias)
        self.attn = Attention(c, heads, bias)
        self.ln_2 = nn.LayerNorm(c, bias=bias)
        self.mlp = Mlp(c, bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab, block, layers, heads, embd, bias):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab, embd),
            wpe=nn.Embedding(block, embd),
            h=nn.ModuleList([Block(embd, heads, bias) for _ in range(layers)]),
            ln_f=nn.LayerNorm(embd, bias=bias),
        ))
        self.lm_head = nn.Linear(embd, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # tied
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, ids):
        t = ids.shape[1]
        pos = torch.arange(t, dtype=torch.long)
        x = self.transformer.wte(ids) + self.transformer.wpe(pos)
        for b in self.transformer.h:
            x = b(x)
        return self.lm_head(self.transformer.ln_f(x))


class CharLstm(nn.Module):
    """backprop's `char-lstm` preset: embedding(V,64),lstm(64,256,layers=2),linear(256,V)."""

    def __init__(self, vocab):
        super().__init__()
        self.emb = nn.Embedding(vocab, 64)
        self.lstm = nn.LSTM(64, 256, num_layers=2, batch_first=True)
        self.out = nn.Linear(256, vocab)

    def forward(self, ids):
        return self.out(self.lstm(self.emb(ids))[0])


class LineLstm(nn.Module):
    """backprop's model line `embedding(V,E),lstm(E,H,layers=2),linear(H,V)`,
    its tensors named as the line names them (`0.weight`, `1.weight_ih_l0`, …)."""

    def __init__(self, vocab, e, h):
        super().__init__()
        self.add_module("0", nn.Embedding(vocab, e))
        self.add_module("1", nn.LSTM(e, h, num_layers=2, batch_first=True))
        self.add_module("2", nn.Linear(h, vocab))

    def forward(self, ids):
        m = dict(self.named_children())
        return m["2"](m["1"](m["0"](ids))[0])


def replay(m, vocab, xs, ys, steps):
    """nanoGPT's loop on fixed batches: AdamW (decay on matrices), warm-up 5
    then cosine from 1e-2 to 1e-3 at `steps`, clipping at 1.0; the losses."""
    opt = adamw(m, 1e-2, 0.99, 0.1)
    losses = []
    for it in range(steps):
        for g in opt.param_groups:
            g["lr"] = get_lr(it, 1e-2, 5, steps, 1e-3)
        logits = m(xs[it])
        loss = F.cross_entropy(logits.view(-1, vocab), ys[it].view(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0, foreach=False)
        opt.step()
        losses.append(loss.item())
    return losses


def get_lr(it, lr, warmup, decay, lr_min):
    """nanoGPT's get_lr."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay:
        return lr_min
    ratio = (it - warmup) / max(decay - warmup, 1)
    return lr_min + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - lr_min)


def adamw(model, lr, beta2, wd):
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": wd},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, beta2), foreach=False)


def state(model):
    """The state_dict as backprop saves it (both names of the tied weight)."""
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def fixtures():
    out, meta = {}, {}
    # forward and gradients, with biases, in float64 from float32 weights
    torch.manual_seed(1)
    cfg = dict(vocab=11, block=8, layers=2, heads=2, embd=16, bias=True)
    m = GPT(**cfg)
    with torch.no_grad():  # biases and norms away from 0 and 1, so they are tested
        for name, p in m.named_parameters():
            if p.dim() < 2:
                p.add_(0.1 * torch.randn_like(p))
    ids = torch.randint(0, cfg["vocab"], (3, 8))
    tgt = torch.randint(0, cfg["vocab"], (3, 8))
    for k, v in state(m).items():
        out[f"fwd.init.{k}"] = v.float()
    m64 = GPT(**cfg).double()
    m64.load_state_dict({k: v.double() for k, v in state(m).items()})
    logits = m64(ids)
    loss = F.cross_entropy(logits.view(-1, cfg["vocab"]), tgt.view(-1))
    loss.backward()
    out["fwd.x"] = ids.float()
    out["fwd.y"] = tgt
    out["fwd.logits"] = logits.detach()
    out["fwd.loss"] = loss.detach().reshape(1)
    for name, p in m64.named_parameters():
        out[f"fwd.grad.{name}"] = p.grad.detach().clone()
    meta["fwd"] = json.dumps(cfg)

    # a 20-step replay in float32, without biases
    torch.manual_seed(2)
    cfg = dict(vocab=11, block=8, layers=2, heads=2, embd=16, bias=False)
    m = GPT(**cfg)
    for k, v in state(m).items():
        out[f"replay.init.{k}"] = v
    steps, batch = 20, 4
    xs = torch.randint(0, cfg["vocab"], (steps, batch, 8))
    ys = (3 * xs + 1) % cfg["vocab"]  # a rule to learn: the loss falls
    losses = replay(m, cfg["vocab"], xs, ys, steps)
    out["replay.x"] = xs.float()
    out["replay.y"] = ys
    out["replay.losses"] = torch.tensor(losses, dtype=torch.float32)
    for k, v in state(m).items():
        out[f"replay.final.{k}"] = v
    meta["replay"] = json.dumps(dict(cfg, steps=steps, lr=1e-2, lr_min=1e-3, warmup=5,
                                     beta2=0.99, weight_decay=0.1, clip=1.0))

    # the same replay for an LSTM language model written as a model line
    torch.manual_seed(3)
    line = "embedding(11,8),lstm(8,16,layers=2),linear(16,11)"
    m = LineLstm(11, 8, 16)
    for k, v in state(m).items():
        out[f"lstm.init.{k}"] = v
    xs = torch.randint(0, 11, (steps, batch, 8))
    ys = (3 * xs + 1) % 11  # a rule to learn: the loss falls
    lstm_losses = replay(m, 11, xs, ys, steps)
    out["lstm.x"] = xs.float()
    out["lstm.y"] = ys
    out["lstm.losses"] = torch.tensor(lstm_losses, dtype=torch.float32)
    for k, v in state(m).items():
        out[f"lstm.final.{k}"] = v
    meta["lstm"] = json.dumps(dict(line=line, steps=steps, lr=1e-2, lr_min=1e-3, warmup=5,
                                   beta2=0.99, weight_decay=0.1, clip=1.0))
    path = os.path.join(FIXTURES, "gpt.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, path, metadata=meta)
    print(f"wrote {path}: {len(out)} tensors; replay losses {losses[0]:.4f} -> {losses[-1]:.4f}, "
          f"lstm {lstm_losses[0]:.4f} -> {lstm_losses[-1]:.4f}")


def read_text(path):
    text = open(path, encoding="utf-8").read()
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = int(0.9 * len(ids))
    return vocab, ids[:cut], ids[cut:]


@torch.no_grad()
def val_loss(model, val, block, batch=64):
    """backprop eval's definition: window i reads val[iT:(i+1)T] and
    predicts val[iT+1:(i+1)T+1], every whole window, every position averaged."""
    model.eval()
    n = (len(val) - 1) // block
    total, count = 0.0, 0
    for s in range(0, n, batch):
        idx = torch.arange(s, min(s + batch, n)) * block
        x = torch.stack([val[i:i + block] for i in idx])
        y = torch.stack([val[i + 1:i + 1 + block] for i in idx])
        logits = model(x)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                 reduction="sum").item()
        count += y.numel()
    model.train()
    return total / count


def load(args):
    st = load_file(args.model)
    # the sizes from the tensors' shapes
    vocab, embd = st["transformer.wte.weight"].shape
    block = st["transformer.wpe.weight"].shape[0]
    layers = len({k.split(".")[2] for k in st if k.startswith("transformer.h.")})
    bias = "transformer.ln_f.bias" in st
    heads = args.heads
    m = GPT(vocab, block, layers, heads, embd, bias)
    m.load_state_dict(st, strict=True)
    _, _, val = read_text(args.data)
    print(f"loaded {args.model} strictly into the PyTorch GPT ({layers} layers, {heads} heads, "
          f"width {embd}, vocab {vocab}, context {block})")
    print(f"val loss {val_loss(m, val, block):.4f}")


def bench(args):
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    vocab, train, val = read_text(args.data)
    block, batch = args.block_size, args.batch_size
    m = CharLstm(len(vocab)) if args.model == "char-lstm" else GPT(len(vocab), block, 4, 4, 128, False)
    opt = adamw(m, args.lr, 0.99, 0.1)
    t0 = time.perf_counter()
    for it in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = get_lr(it, args.lr, 100, args.steps, args.lr / 10)
        ix = torch.randint(len(train) - block, (batch,))
        x = torch.stack([train[i:i + block] for i in ix])
        y = torch.stack([train[i + 1:i + 1 + block] for i in ix])
        logits = m(x)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        if it % 200 == 0 or it == args.steps - 1:
            print(f"step {it}: loss {loss.item():.4f}", file=sys.stderr)
    secs = time.perf_counter() - t0
    v = val_loss(m, val, block)
    print(json.dumps({"framework": "pytorch", "model": args.model, "torch": torch.__version__, "threads": args.threads,
                      "seed": args.seed, "steps": args.steps, "seconds": round(secs, 2),
                      "ms_per_step": round(1000 * secs / args.steps, 2), "val_loss": round(v, 4)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fixtures")
    lp = sub.add_parser("load")
    lp.add_argument("model")
    lp.add_argument("--data", required=True)
    lp.add_argument("--heads", type=int, default=4)
    bp = sub.add_parser("bench")
    bp.add_argument("--data", required=True)
    bp.add_argument("--steps", type=int, default=2000)
    bp.add_argument("--seed", type=int, default=0)
    bp.add_argument("--threads", type=int, default=2)
    bp.add_argument("--lr", type=float, default=1e-3)
    bp.add_argument("--block-size", type=int, default=64)
    bp.add_argument("--batch-size", type=int, default=12)
    bp.add_argument("--model", choices=["gpt-baby", "char-lstm"], default="gpt-baby")
    a = ap.parse_args()
    {"fixtures": lambda: fixtures(), "load": lambda: load(a), "bench": lambda: bench(a)}[a.cmd]()


if __name__ == "__main__":
    main()
