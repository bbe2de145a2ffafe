"""The CUDA path's checks for `bench/gpu_rehearsal.sh`: bf16 against fp32 logits on the same weights, training
steps with torch.compile off and on, and the achieved matmul TFLOP/s against the GPU's own bf16 GEMM peak.

    .venv/bin/python bench/gpu_checks.py --out runs/gpu-rehearsal/checks.json [--preset sudoku-extreme-mlp]
    .venv/bin/python bench/gpu_checks.py --allow-cpu --quick --out /tmp/checks.json   # checks the script on CPU

Parity: the preset's model (shapes of Sudoku: 81 tokens, vocabulary 11) with seeded random weights, copied into a
second model whose forward runs in bf16 (what `resolve_model_config` picks on CUDA), on the same random batch.
Tolerance: relative L2 error of the logits of one supervision step without recursion <= 0.03 (bf16 keeps 8 bits of
mantissa; 0.016 measured with bf16 on CPU); the full recursion's 16-step numbers are reported (see `parity`).
Throughput: real `Trainer.step()` calls on a synthetic dataset with the preset's shapes (bench/train_throughput.py),
one warm-up step (compilation happens there), then timed steps; FLOPs from `trm.model.flops`.
Exit status 1 when parity fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from _bench_report import gemm_rate
from train_throughput import synthetic_dataset

from trm.config import ModelConfig, load_config
from trm.data.loader import PuzzleDataset
from trm.model import TRM
from trm.model.flops import supervision_step_flops
from trm.train.trainer import Trainer

PARITY_REL_L2 = 0.03
SEQ_LEN, VOCAB = 81, 11


def model_config(preset: str, quick: bool, dtype: str) -> ModelConfig:
    model = load_config(preset).model
    small = {"hidden_size": 64, "num_heads": 2, "puzzle_emb_ndim": 64} if quick else {}
    update = {"seq_len": SEQ_LEN, "vocab_size": VOCAB, "num_puzzle_identifiers": 2, "forward_dtype": dtype, **small}
    return model.model_copy(update=update)


def step_logits(config: ModelConfig, batch: dict[str, torch.Tensor], device: torch.device, steps: int) -> dict:
    """Final logits of ``steps`` supervision steps in fp32 and in bf16, from the same seeded weights."""
    torch.manual_seed(0)
    reference = TRM(config).to(device).eval()
    low = TRM(config.model_copy(update={"forward_dtype": "bfloat16"})).to(device).eval()
    low.load_state_dict(reference.state_dict())
    logits = []
    for model in (reference, low):
        carry = model.initial_carry(batch)
        with torch.no_grad():
            for _ in range(steps):
                carry, out = model(carry, batch)
        logits.append(out["logits"].float())
    exact, approx = logits
    return {
        "rel_l2": float((approx - exact).norm() / exact.norm()),
        "argmax_agreement": float((approx.argmax(-1) == exact.argmax(-1)).float().mean()),
    }


def parity(preset: str, device: torch.device, quick: bool, rows: int) -> dict:
    """bf16 forward against fp32 forward of the same weights. The gate is one supervision step without recursion
    (T=1, n=1: two passes of the block stack and the heads), where only bf16 rounding separates the two. The full
    recursion over 16 steps is reported beside it: with random weights the recursion amplifies any perturbation
    (about 0.27 relative error after one T=3, n=6 step, measured on CPU), so it is no test of the kernels; a
    trained model, which contracts towards its answer, is expected to agree far better there."""
    generator = torch.Generator().manual_seed(1)
    batch = {
        "inputs": torch.randint(1, VOCAB, (rows, SEQ_LEN), generator=generator, dtype=torch.int32).to(device),
        "labels": torch.randint(2, VOCAB, (rows, SEQ_LEN), generator=generator).to(device),
        "puzzle_identifiers": torch.ones(rows, dtype=torch.int32, device=device),
    }
    config = model_config(preset, quick, "float32")
    gate = step_logits(config.model_copy(update={"H_cycles": 1, "L_cycles": 1}), batch, device, steps=1)
    full = step_logits(config, batch, device, steps=config.halt_max_steps)
    return {**gate, "tolerance": PARITY_REL_L2, "ok": gate["rel_l2"] <= PARITY_REL_L2, "full_recursion_16_steps": full}


def training_rate(
    preset: str, data: Path, device: torch.device, compiled: bool, batch: int, steps: int, extra: list[str]
) -> dict:
    overrides = [
        *extra,
        f"data.name={data}",
        f"train.global_batch_size={batch}",
        "train.max_steps=1000",
        "train.epochs=null",
    ]
    overrides += [f"train.device={device.type}", f"train.compile={str(compiled).lower()}"]
    trainer = Trainer(load_config(preset, overrides), PuzzleDataset.open(data, "train"), device=device)
    started = time.perf_counter()
    trainer.step()  # warm-up; compilation happens here
    synchronize(device)
    warm_up_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    synchronize(device)
    seconds = time.perf_counter() - started
    flops = supervision_step_flops(trainer.model.config).training * batch * steps
    return {
        "compile": compiled,
        "warm_up_s": warm_up_s,
        "steps_per_s": steps / seconds,
        "tflops": flops / seconds / 1e12,
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_peak_tflops(device: torch.device, size: int) -> float:
    """Best bf16 (CUDA) or fp32 (CPU) square matmul rate: the denominator of the utilisation."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return gemm_rate(size, size, size, repeats=6, device=device, dtype=dtype) / 1e12


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON summary")
    parser.add_argument("--preset", default="sudoku-extreme-mlp")
    parser.add_argument("--allow-cpu", action="store_true", help="run on CPU (checks this script, not a GPU)")
    parser.add_argument("--quick", action="store_true", help="small model and batch")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("gpu_checks: no CUDA GPU visible to torch; nothing to check (use --allow-cpu to test the script)")
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch, steps = (4, 2) if args.quick else (768, 10)
    summary: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    summary["torch"] = torch.__version__
    summary["parity"] = parity(args.preset, device, args.quick, rows=2 if args.quick else 64)
    print(json.dumps({"parity": summary["parity"]}), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        data = synthetic_dataset(
            Path(folder) / "synthetic", SEQ_LEN, VOCAB, (9, 9), rows=max(batch * 4, 64), identifiers=1
        )
        quick = ["model.hidden_size=64", "model.num_heads=2", "model.puzzle_emb_ndim=64"] if args.quick else []
        modes = [False, True] if device.type == "cuda" else [False]  # the Trainer compiles on CUDA only
        summary["training"] = [training_rate(args.preset, data, device, m, batch, steps, quick) for m in modes]
    summary["gemm_peak_tflops"] = gemm_peak_tflops(device, 8192 if device.type == "cuda" else 1024)
    best = max(run["tflops"] for run in summary["training"])
    summary["fraction_of_peak"] = best / summary["gemm_peak_tflops"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary), flush=True)
    return 0 if summary["parity"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
