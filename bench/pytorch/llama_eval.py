"""Perplexity of an HF Llama checkpoint in plain PyTorch, as the speed anchor for `npm run bench -- pytorch-anchor`.

This is the forward pass the shared references were computed with (PyTorch fp32 on CPU, one window per
forward, the GPTQ evaluation protocol), written out without `transformers` because the test machine has only
Debian's python3-torch. It reads model.safetensors and config.json itself and prints one JSON line:
{"ppl", "mean_nll", "windows", "predicted", "seconds", "threads", "batch", "blas"}.

usage: python3 llama_eval.py MODEL_DIR IDS_BIN [--seqlen 256] [--threads 1] [--max-windows N] [--batch 1]
"""

import argparse
import json
import math
import struct
import time

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        lo, hi = entry["data_offsets"]
        raw = data[lo:hi]
        if entry["dtype"] == "BF16":
            half = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = half.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=DTYPES[entry["dtype"]]).astype(np.float32)
        out[name] = torch.from_numpy(arr.reshape(entry["shape"]).copy())
    return out


class Block(torch.nn.Module):
    """One decoder block with its Linears as nn.Linear children (named as in HF), so hooks can see them."""

    NAMES = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]

    def __init__(self, weights, prefix, heads, kv_heads, head_dim, eps):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim, self.eps = heads, kv_heads, head_dim, eps
        self.attn_norm = weights[prefix + "input_layernorm.weight"]
        self.ffn_norm = weights[prefix + "post_attention_layernorm.weight"]
        self.linears = torch.nn.ModuleDict()
        for name in self.NAMES:
            w = weights[prefix + name + ".weight"]
            linear = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
            linear.weight.data = w
            self.linears[name.replace(".", "_")] = linear

    def linear(self, name):
        return self.linears[name.replace(".", "_")]

    def rms_norm(self, x, weight):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * weight

    @staticmethod
    def rotate(x, cos, sin):
        # HF layout: the two halves of each head are the pairs.
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        lin = self.linear
        h = self.rms_norm(x, self.attn_norm)
        q = lin("self_attn.q_proj")(h).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        k = lin("self_attn.k_proj")(h).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        v = lin("self_attn.v_proj")(h).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = self.rotate(q, cos, sin), self.rotate(k, cos, sin)
        group = self.heads // self.kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        att = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(self.head_dim) + mask, dim=-1)
        x = x + lin("self_attn.o_proj")((att @ v).transpose(1, 2).reshape(B, T, -1))
        h = self.rms_norm(x, self.ffn_norm)
        gate = torch.nn.functional.silu(lin("mlp.gate_proj")(h))
        return x + lin("mlp.down_proj")(gate * lin("mlp.up_proj")(h))


class Llama:
    def __init__(self, model_dir):
        with open(f"{model_dir}/config.json") as f:
            self.cfg = json.load(f)
        self.w = read_safetensors(f"{model_dir}/model.safetensors")
        c = self.cfg
        heads = c["num_attention_heads"]
        self.head_dim = c["hidden_size"] // heads
        self.eps = c.get("rms_norm_eps", 1e-5)
        self.embed = self.w["model.embed_tokens.weight"]
        self.head = self.w.get("lm_head.weight", self.embed)
        self.blocks = [
            Block(self.w, f"model.layers.{i}.", heads, c.get("num_key_value_heads", heads), self.head_dim, self.eps)
            for i in range(c["num_hidden_layers"])
        ]

    def rope(self, T):
        theta = self.cfg.get("rope_theta", 10000.0)
        inv = 1.0 / (theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))
        freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv)
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos(), emb.sin(), torch.full((T, T), float("-inf")).triu(1)

    def logits(self, ids):
        """Logits [B, T, V] for windows ids [B, T]; each window is its own sequence."""
        x = self.embed[ids]
        cos, sin, mask = self.rope(ids.shape[1])
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return self.blocks[0].rms_norm(x, self.w["model.norm.weight"]) @ self.head.T


def evaluate(model, ids, seqlen, max_windows=0, batch=1):
    """Perplexity in the GPTQ protocol: non-overlapping windows, seqlen - 1 predictions each."""
    windows = ids.numel() // seqlen
    if max_windows > 0:
        windows = min(windows, max_windows)
    nll = 0.0
    start = time.perf_counter()
    with torch.no_grad():
        for k0 in range(0, windows, batch):
            n = min(batch, windows - k0)
            w = ids[k0 * seqlen : (k0 + n) * seqlen].view(n, seqlen)
            logits = model.logits(w)
            nll += torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum"
            ).item()
    predicted = windows * (seqlen - 1)
    return {
        "ppl": math.exp(nll / predicted),
        "mean_nll": nll / predicted,
        "windows": windows,
        "predicted": predicted,
        "seconds": time.perf_counter() - start,
    }


def blas_library():
    """The BLAS this process loaded (Debian switches libblas.so.3 by alternatives), or "unknown"."""
    torch.ones(8, 8) @ torch.ones(8, 8)
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower()}
    except OSError:
        return "unknown"
    return ", ".join(sorted(p.rsplit("/", 2)[-2] + "/" + p.rsplit("/", 1)[-1] for p in paths)) or "unknown"


def read_ids(path):
    return torch.from_numpy(np.fromfile(path, dtype="<i4").astype(np.int64))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("ids")
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-windows", type=int, default=0)
    # 1 is the references' protocol (one window per forward); more batches windows as [B, T].
    ap.add_argument("--batch", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    result = evaluate(Llama(a.model_dir), read_ids(a.ids), a.seqlen, a.max_windows, a.batch)
    print(json.dumps({**result, "threads": a.threads, "batch": a.batch, "blas": blas_library()}))


if __name__ == "__main__":
    main()
