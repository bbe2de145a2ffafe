"""One training process: model, EMA, both optimizers, schedule, sampler and the persistent ACT carry.

The Ray layer runs exactly this per worker, so everything a step (and a resume) needs lives here and the process
group is the only distributed input. How a step is split over ranks and micro-batches, and why any split with the
same global batch computes the same thing: docs/architecture.md, "Design: the training process".
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist

from trm.config import DATASET_SIZES, TRMConfig
from trm.data.loader import PuzzleDataset, make_batch
from trm.data.sampler import GroupSampler
from trm.data.schema import DatasetMetadata
from trm.model import TRM, ModelConfig, RecursionDepth, TRMCarry
from trm.train.cadence import step_budget
from trm.train.curriculum import depth_at_step
from trm.train.ema import EMA
from trm.train.grad_sync import exchange_step
from trm.train.loss import act_loss, finalize_metrics
from trm.train.optim import AdamATan2, SignSGD
from trm.train.schedule import learning_rate

STATE_FORMAT = 1
_BOOL_PREFIX = "bool:"  # carry keys stored as uint8 (gloo cannot all-gather bool)


def resolve_device(setting: str, override: torch.device | str | None = None) -> torch.device:
    """'auto' = CUDA when present, else CPU; an explicit 'cuda' without a GPU is an error, never a silent CPU run."""
    if override is not None:
        return torch.device(override)
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is available (use auto or cpu)")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def resolve_model_config(model: ModelConfig, metadata: DatasetMetadata, device: torch.device) -> ModelConfig:
    """Fill seq_len / vocab_size / num_puzzle_identifiers from the dataset and pick the forward dtype for the device
    (bf16 on CUDA as the official runs, fp32 on CPU where bf16 is ~100x slower). Explicit conflicting values fail."""
    from_data = {key: getattr(metadata, key) for key in DATASET_SIZES}
    updates: dict[str, Any] = {}
    for key, value in from_data.items():
        current = getattr(model, key)
        if current == 0:
            updates[key] = value
        elif current != value:
            raise ValueError(f"model.{key}={current} but dataset {metadata.name!r} has {key}={value}")
    updates["forward_dtype"] = "bfloat16" if device.type == "cuda" else "float32"
    return model.model_copy(update=updates)


def _world(process_group: dist.ProcessGroup | None) -> tuple[int, int]:
    if process_group is None:
        return 0, 1
    return dist.get_rank(process_group), dist.get_world_size(process_group)


class Trainer:
    """Owns one process's training state; ``step()`` performs exactly one optimizer step."""

    def __init__(
        self,
        config: TRMConfig,
        train_dataset: PuzzleDataset,
        process_group: dist.ProcessGroup | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        train_cfg = config.train
        self.process_group = process_group
        self.rank, self.world_size = _world(process_group)
        batch = train_cfg.global_batch_size
        shards = self.world_size * train_cfg.grad_accum_steps
        if batch % shards:
            raise ValueError(
                f"train.global_batch_size={batch} must be divisible by world_size*grad_accum_steps={shards}"
            )
        self.micro_batch_size = batch // shards
        self.local_batch_size = batch // self.world_size
        self.device = resolve_device(train_cfg.device, device)
        self.dataset = train_dataset

        model_config = resolve_model_config(config.model, train_dataset.metadata, self.device)
        self.config = config.model_copy(update={"model": model_config})
        with torch.random.fork_rng(devices=[]):  # init from the seed without disturbing the caller's global RNG
            torch.manual_seed(train_cfg.seed)
            self.model = TRM(model_config, exploration_seed=train_cfg.seed).to(self.device)
        self.model.train()
        if self.world_size > 1:
            self._broadcast_model()

        self.named_dense_params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.optimizer = AdamATan2(
            [p for _, p in self.named_dense_params],
            lr=train_cfg.lr,
            betas=(train_cfg.beta1, train_cfg.beta2),
            weight_decay=train_cfg.weight_decay,
        )
        puzzle_emb = self.model.puzzle_emb
        self.sparse_optimizer = (
            SignSGD(puzzle_emb.weights, train_cfg.puzzle_emb_lr, train_cfg.puzzle_emb_weight_decay)
            if puzzle_emb is not None
            else None
        )
        self.ema = EMA(self.model, train_cfg.ema_rate) if train_cfg.ema else None
        self.sampler = GroupSampler(
            train_dataset, batch, train_cfg.seed, rank=self.rank, world_size=self.world_size, device="cpu"
        )
        self.total_steps = step_budget(train_cfg, train_dataset.num_groups, train_dataset.mean_puzzle_examples)
        if self.total_steps < 1:
            raise ValueError(f"the step budget is {self.total_steps}: raise train.epochs or set train.max_steps")
        self.step_count = 0
        self.loop_state: dict[str, Any] = {}  # JSON state of the loop around us (checkpoint selection), checkpointed
        self.carries: list[TRMCarry | None] = [None] * train_cfg.grad_accum_steps
        self.forward = self.model
        if train_cfg.compile and self.device.type == "cuda":
            self.forward = torch.compile(self.model)  # type: ignore[assignment]

    # ------------------------------------------------------------------------------------------------ the step
    @property
    def steps_per_epoch(self) -> float:
        return self.sampler.estimated_batches_per_epoch

    def learning_rates(self, step: int) -> tuple[float, float]:
        """(dense lr, puzzle-table lr) for 1-based optimizer step ``step``: same schedule shape, own base each."""
        t = self.config.train
        dense = learning_rate(step, t.lr, t.lr_warmup_steps, self.total_steps, t.lr_min_ratio)
        sparse = learning_rate(step, t.puzzle_emb_lr, t.lr_warmup_steps, self.total_steps, t.lr_min_ratio)
        return dense, sparse

    def step(self) -> dict[str, float]:
        """One optimizer step = one supervision step for every row of the carry. Returns finalized metrics
        (losses / global batch; accuracies over rows that halted this step), identical on every rank."""
        self.step_count += 1
        dense_lr, sparse_lr = self.learning_rates(self.step_count)
        global_batch = self.config.train.global_batch_size
        local_rows = self.sampler.next_indices()
        min_halt = self.model.draw_min_halt_steps(global_batch)
        local_min_halt = min_halt[self.rank * self.local_batch_size : (self.rank + 1) * self.local_batch_size]
        depth = depth_at_step(self.config.train.depth_curriculum, self.step_count, self.total_steps)
        sums = self._forward_backward(local_rows, local_min_halt, depth)

        keys = sorted(sums)
        local_sums = torch.stack([sums[k].detach().to(torch.float64) for k in keys])
        sparse = self.model.puzzle_emb.take_sparse_gradients() if self.model.puzzle_emb is not None else None
        empty = torch.zeros(0, dtype=torch.long, device=self.device)
        exchanged = exchange_step(
            [p for _, p in self.named_dense_params],
            sparse.ids if sparse is not None else empty,
            sparse.grads if sparse is not None else torch.zeros(0, 0, device=self.device),
            local_sums,
            self.process_group,
        )
        if self.sparse_optimizer is not None:
            self.sparse_optimizer.lr = sparse_lr
            self.sparse_optimizer.step(exchanged.sparse_ids, exchanged.sparse_grads)
        for group in self.optimizer.param_groups:
            group["lr"] = dense_lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)

        metrics = finalize_metrics(dict(zip(keys, exchanged.metric_sums.cpu().tolist(), strict=True)), global_batch)
        metrics["lr"] = dense_lr
        if self.config.train.depth_curriculum:
            metrics["H_cycles"], metrics["L_cycles"] = depth or (self.config.model.H_cycles, self.config.model.L_cycles)
        return metrics

    def _forward_backward(
        self, local_rows: np.ndarray, local_min_halt: torch.Tensor, depth: RecursionDepth | None
    ) -> dict[str, torch.Tensor]:
        """Every micro-batch's supervision step and backward pass (gradients accumulate); the summed metrics."""
        global_batch = self.config.train.global_batch_size
        sums: dict[str, torch.Tensor] = {}
        m = self.micro_batch_size
        for micro, carry in enumerate(self.carries):
            batch = make_batch(self.dataset, local_rows[micro * m : (micro + 1) * m], self.device)
            if carry is None:
                carry = self.model.initial_carry(batch)
            # a new depth is a new python int for torch.compile: one recompile per curriculum stage
            carry, out = self.forward(
                carry, batch, min_halt_steps=local_min_halt[micro * m : (micro + 1) * m], depth=depth
            )
            result = act_loss(
                out["logits"],
                out["q_halt_logits"],
                carry.current_data["labels"],
                carry.halted,
                carry.steps,
                global_batch,
                q_continue_logits=out.get("q_continue_logits"),
                q_continue_target=out.get("target_q_continue"),
            )
            result.loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is unannotated
            self.carries[micro] = carry
            for key, value in result.metrics.items():
                sums[key] = sums[key] + value if key in sums else value
        return sums

    def _broadcast_model(self) -> None:
        """Every rank starts from rank 0's weights and buffers (same seed already; this makes it a guarantee)."""
        with torch.no_grad():
            for tensor in list(self.model.parameters()) + list(self.model.buffers()):
                source = dist.get_global_rank(self.process_group, 0) if self.process_group is not None else 0
                dist.broadcast(tensor.data, src=source, group=self.process_group)

    # ------------------------------------------------------------------------------------------------ eval weights
    def ema_model(self, into: TRM | None = None) -> TRM:
        """A model (``into`` or a new one) holding the EMA weights and the live buffers, in eval mode: what is
        evaluated and exported. Without EMA, a copy of the live weights."""
        target = into if into is not None else TRM(self.config.model).to(self.device)
        if self.ema is not None:
            self.ema.copy_to(target, source=self.model)
        else:
            target.load_state_dict(self.model.state_dict())
        return target.eval()

    # ------------------------------------------------------------------------------------------------ checkpoint
    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, json_state): everything to continue bit-exactly. Collective when distributed (carries are
        gathered into global row order); every rank gets the full result."""
        tensors: dict[str, torch.Tensor] = {}
        for name, value in self.model.state_dict().items():
            tensors[f"model.{name}"] = value
        if self.ema is not None:
            tensors.update(self.ema.state_tensors("ema."))
        for name, param in self.named_dense_params:
            state = self.optimizer.state.get(param)
            if state:
                for key in ("step", "exp_avg", "exp_avg_sq"):
                    tensors[f"optim.dense.{name}.{key}"] = state[key]
        tensors.update(self._global_carry_tensors())
        tensors["rng.exploration"] = self.model.exploration_generator.get_state()
        tensors["rng.torch_cpu"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.torch_cuda"] = torch.cuda.get_rng_state(self.device)
        tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in tensors.items()}

        # the legacy tuple form: (kind, keys, pos, has_gauss, cached_gaussian)
        np_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
        py_state = random.getstate()
        meta: dict[str, Any] = {
            "format": STATE_FORMAT,
            "step": self.step_count,
            "total_steps": self.total_steps,
            "world_size": self.world_size,
            "grad_accum_steps": self.config.train.grad_accum_steps,
            "has_carry": any(c is not None for c in self.carries),
            "sampler": self.sampler.state_dict(),
            "rng_numpy": {
                "kind": np_state[0],
                "keys": np_state[1].tolist(),
                "pos": int(np_state[2]),
                "has_gauss": int(np_state[3]),
                "cached_gaussian": float(np_state[4]),
            },
            "rng_python": [py_state[0], list(py_state[1]), py_state[2]],
            "config": self.config.model_dump(mode="json"),
            "loop": self.loop_state,
        }
        return tensors, meta

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore a state produced by ``state_dict`` (any world size / accumulation with the same global batch)."""
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"checkpoint format {meta.get('format')!r} is not supported (expected {STATE_FORMAT})")
        model_state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        missing, unexpected = self.model.load_state_dict(model_state, strict=False)
        if missing or unexpected:
            raise ValueError(f"checkpoint model tensors do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
        if self.ema is not None:
            self.ema.load_state_tensors(tensors, "ema.")
        for name, param in self.named_dense_params:
            prefix = f"optim.dense.{name}."
            if prefix + "step" in tensors:
                self.optimizer.state[param] = {
                    "step": tensors[prefix + "step"].clone(),
                    "exp_avg": tensors[prefix + "exp_avg"].to(param.device).clone(),
                    "exp_avg_sq": tensors[prefix + "exp_avg_sq"].to(param.device).clone(),
                }
        self._load_global_carry(tensors, bool(meta.get("has_carry")))
        self.model.exploration_generator.set_state(tensors["rng.exploration"])
        torch.set_rng_state(tensors["rng.torch_cpu"])
        if "rng.torch_cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.torch_cuda"], self.device)
        self.sampler.load_state_dict(meta["sampler"])
        rn = meta["rng_numpy"]
        np.random.set_state(
            (rn["kind"], np.asarray(rn["keys"], dtype=np.uint32), rn["pos"], rn["has_gauss"], rn["cached_gaussian"])
        )
        random.setstate((meta["rng_python"][0], tuple(meta["rng_python"][1]), meta["rng_python"][2]))
        self.step_count = int(meta["step"])
        self.loop_state = dict(meta.get("loop") or {})

    def _global_carry_tensors(self) -> dict[str, torch.Tensor]:
        """Carry tensors of all ranks and micro-batches, concatenated in global row order, as ``carry.<key>``."""
        if not any(c is not None for c in self.carries):
            return {}
        if any(c is None for c in self.carries):
            raise RuntimeError("some micro-batch carries are missing")
        per_micro = [c.state_dict() for c in self.carries]  # type: ignore[union-attr]
        out: dict[str, torch.Tensor] = {}
        for key in sorted(per_micro[0]):
            local = torch.cat([d[key] for d in per_micro])
            stored_key = key
            if local.dtype == torch.bool:
                local, stored_key = local.to(torch.uint8), _BOOL_PREFIX + key
            if self.world_size > 1:
                parts = [torch.empty_like(local) for _ in range(self.world_size)]
                dist.all_gather(parts, local.contiguous(), group=self.process_group)
                local = torch.cat(parts)
            out[f"carry.{stored_key}"] = local
        return out

    def _load_global_carry(self, tensors: dict[str, torch.Tensor], has_carry: bool) -> None:
        self.carries = [None] * len(self.carries)
        if not has_carry:
            return
        flat: dict[str, torch.Tensor] = {}
        for key, value in tensors.items():
            if not key.startswith("carry."):
                continue
            name = key.removeprefix("carry.")
            if name.startswith(_BOOL_PREFIX):
                name, value = name.removeprefix(_BOOL_PREFIX), value.to(torch.bool)
            flat[name] = value
        rows = next(iter(flat.values())).shape[0]
        if rows != self.config.train.global_batch_size:
            raise ValueError(
                f"checkpoint carry has {rows} rows, global batch size is {self.config.train.global_batch_size}"
            )
        m = self.micro_batch_size
        for micro in range(len(self.carries)):
            start = self.rank * self.local_batch_size + micro * m
            piece = {k: v[start : start + m].to(self.device).clone() for k, v in flat.items()}
            self.carries[micro] = TRMCarry.from_state_dict(piece)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (None = leave it)."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
