"""The GPTQ authors' PyTorch code on stories260K, timed, as the anchor for `npm run bench -- pytorch-anchor`.

The algorithm files (gptq.py, quant.py) come from a local copy of IST-DASLab/gptq named by --gptq-repo; they
are not part of Whittle. This driver does what their llama.py does for LlamaForCausalLM (`llama_sequential`,
not true-sequential): capture the calibration windows' inputs to block 0, then for each block hook its seven
Linears, run every window through the block, quantize each Linear with `fasterquant`, and run the windows
through the quantized block to make the next block's inputs. `transformers` is not installed here, so a
stand-in module provides the one name gptq.py reads from it (Conv1D, for an isinstance check), and on a
CPU-only torch the CUDA synchronize it calls for its own timing is a no-op.

It prints one JSON line: {"seconds" (the block loop, as the references' compress_seconds), "ppl" (eval after,
when --eval-ids is given), "threads", "blas"}.
"""

import argparse
import json
import sys
import time
import types

import torch

from llama_eval import Block, Llama, blas_library, evaluate, read_ids


def import_gptq(repo):
    stand_in = types.ModuleType("transformers")
    stand_in.Conv1D = type("Conv1D", (torch.nn.Module,), {})
    sys.modules.setdefault("transformers", stand_in)
    # fasterquant times itself with torch.cuda.synchronize(), which a CPU-only torch refuses; on the CPU
    # there is nothing to wait for.
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda *args, **kwargs: None
    sys.path.insert(0, repo)
    import gptq
    import quant

    return gptq.GPTQ, quant.Quantizer


@torch.no_grad()
def quantize_blocks(model, windows, GPTQ, Quantizer, wbits, groupsize):
    seqlen = windows.shape[1]
    cos, sin, mask = model.rope(seqlen)
    inps = model.embed[windows]
    for block in model.blocks:
        runs = {}
        for name in Block.NAMES:
            runs[name] = GPTQ(block.linear(name))
            runs[name].quantizer = Quantizer()
            runs[name].quantizer.configure(wbits, perchannel=True, sym=False, mse=False)

        def hook(name):
            return lambda _, inp, out: runs[name].add_batch(inp[0].data, out.data)

        handles = [block.linear(n).register_forward_hook(hook(n)) for n in Block.NAMES]
        for j in range(windows.shape[0]):
            block(inps[j : j + 1], cos, sin, mask)
        for h in handles:
            h.remove()
        for name in Block.NAMES:
            runs[name].fasterquant(percdamp=0.01, groupsize=groupsize, actorder=False, static_groups=False)
            runs[name].free()
        inps = torch.cat([block(inps[j : j + 1], cos, sin, mask) for j in range(windows.shape[0])])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("calib_ids")
    ap.add_argument("calib_starts", help="JSON list of window starts (or an object with 'starts')")
    ap.add_argument("--gptq-repo", required=True)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--wbits", type=int, default=4)
    ap.add_argument("--groupsize", type=int, default=-1)
    ap.add_argument("--eval-ids")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    GPTQ, Quantizer = import_gptq(a.gptq_repo)
    with open(a.calib_starts) as f:
        starts = json.load(f)
    starts = starts["starts"] if isinstance(starts, dict) else starts
    ids = read_ids(a.calib_ids)
    windows = torch.stack([ids[s : s + a.seqlen] for s in starts])
    model = Llama(a.model_dir)
    start = time.perf_counter()
    quantize_blocks(model, windows, GPTQ, Quantizer, a.wbits, a.groupsize)
    seconds = time.perf_counter() - start
    out = {"seconds": seconds, "threads": a.threads, "blas": blas_library()}
    if a.eval_ids:
        out["ppl"] = evaluate(model, read_ids(a.eval_ids), a.seqlen)["ppl"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
