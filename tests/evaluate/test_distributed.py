"""Two real gloo processes each evaluate their share; the all-reduced result equals one process over everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import torch
from safetensors.torch import load_file

from trm.config import DataConfig, TrainConfig, TRMConfig
from trm.data.loader import PuzzleDataset
from trm.data.writer import DatasetWriter, ExampleBatch
from trm.evaluate.inference import evaluate
from trm.model import TRM, ModelConfig
from trm.train.export import export_model, load_exported

WORKER = textwrap.dedent(
    """
    import json, sys
    import torch, torch.distributed as dist
    from safetensors.torch import save_file
    from trm.data.loader import PuzzleDataset
    from trm.evaluate.inference import evaluate
    from trm.train.export import load_exported

    rank, world = int(sys.argv[1]), 2
    init, model_dir, data_dir, out = sys.argv[2:6]
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    model, _ = load_exported(model_dir)
    ds = PuzzleDataset.open(data_dir, "test")
    summaries = {}
    for mode in ("fixed", "adaptive"):
        r = evaluate(model, ds, batch_size=4, mode=mode, rank=rank, world_size=world, collect_predictions=True)
        summaries[mode] = {k: v for k, v in r.summary().items() if k not in ("seconds", "puzzles_per_second")}
        save_file({"predictions": r.predictions, "q_halt": r.q_halt_logits, "steps": r.steps_used,
                   "predicted": r.predicted.to(torch.uint8)}, f"{out}/{mode}-{rank}.safetensors")
    with open(f"{out}/summary-{rank}.json", "w") as f:
        json.dump(summaries, f)
    dist.destroy_process_group()
    """
)


def test_two_ranks_reduce_to_the_single_process_result(tmp_path) -> None:
    rng = np.random.default_rng(5)
    n, seq_len, vocab = 13, 8, 5  # 13 rows, global batch 4 -> ranks get 2 rows each, last batch padded
    inputs = rng.integers(1, vocab, size=(n, seq_len)).astype(np.uint8)
    labels = rng.integers(1, vocab, size=(n, seq_len)).astype(np.uint8)
    batch = ExampleBatch(
        inputs=inputs,
        labels=labels,
        puzzle_identifier=np.ones(n, dtype=np.int32),
        puzzle_index=np.arange(n, dtype=np.int32),
        group_index=np.arange(n, dtype=np.int32),
        source_names=["gen"],
        source_codes=np.zeros(n, dtype=np.int32),
    )
    data_dir = tmp_path / "tiny"
    with DatasetWriter(data_dir, seq_len=seq_len) as writer:
        writer.identifiers.append("only")
        writer.split("test").write(batch)
        writer.commit(
            {
                "name": "tiny",
                "task": "sudoku",
                "builder_version": "test",
                "params": {},
                "seq_len": seq_len,
                "vocab_size": vocab,
                "vocab": [str(i) for i in range(vocab)],
                "grid_shape": (2, 4),
                "sources": [],
            }
        )
    torch.manual_seed(0)
    model_config = ModelConfig(
        seq_len=seq_len,
        vocab_size=vocab,
        num_puzzle_identifiers=2,
        hidden_size=16,
        num_heads=1,
        expansion=2.0,
        L_layers=1,
        H_cycles=1,
        L_cycles=1,
        puzzle_emb_ndim=16,
        puzzle_emb_len=1,
        halt_max_steps=6,
    )
    model = TRM(model_config)
    with torch.no_grad():  # q_halt crossing 0 at different steps, so adaptive mode really differs per row
        model.inner.q_head.weight.copy_(torch.randn(model.inner.q_head.weight.shape) * 2.0)
        model.inner.q_head.bias.fill_(0.0)
    model_dir = tmp_path / "model"
    export_model(
        model,
        TRMConfig(model=model_config, data=DataConfig(name=str(data_dir)), train=TrainConfig(max_steps=1)),
        model_dir,
    )

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    init = f"file://{tmp_path / 'rendezvous'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(r), init, str(model_dir), str(data_dir), str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    for p in procs:
        output, _ = p.communicate(timeout=120)
        assert p.returncode == 0, output.decode()[-3000:]

    single_model, _ = load_exported(model_dir)
    ds = PuzzleDataset.open(data_dir, "test")
    summaries = [json.loads((tmp_path / f"summary-{r}.json").read_text()) for r in range(2)]
    assert summaries[0] == summaries[1]  # every rank holds the reduced totals
    for mode in ("fixed", "adaptive"):
        single = evaluate(single_model, ds, batch_size=4, mode=mode, collect_predictions=True)
        reduced = summaries[0][mode]
        assert reduced["count"] == n
        for key in ("accuracy", "exact_accuracy", "q_halt_accuracy", "steps"):
            assert abs(reduced[key] - single.metrics[key]) < 1e-9, (mode, key)
        if mode == "fixed":
            assert [p["count"] for p in reduced["per_step"]] == [n] * 6
            for got, want in zip(reduced["per_step"], single.per_step, strict=True):
                assert abs(got["accuracy"] - want["accuracy"]) < 1e-9
        else:
            assert reduced["halted_at_step"] == single.halted_at_step
            assert len(set(single.steps_used.tolist())) > 1  # rows did halt at different steps
        for r in range(2):
            tensors = load_file(str(tmp_path / f"{mode}-{r}.safetensors"))
            assert tensors["predicted"].bool().all()
            assert torch.equal(tensors["predictions"], single.predictions)
            assert torch.equal(tensors["steps"], single.steps_used)
            assert torch.allclose(tensors["q_halt"], single.q_halt_logits, atol=1e-5)
