"""Data-parallel training on torch.distributed: who this worker is, its share of a batch, and collectives.

honed runs under torchrun (`honed train --nproc N` launches it). Every worker computes
the same global batch order from the seed and the epoch, and takes a contiguous share
of each global batch; its loss is weighted so that DistributedDataParallel's gradient
average equals the gradient of the mean over the whole global batch. Unlike
DistributedSampler, no rows are repeated to even out the shares, so N workers end
with the same parameters as one worker with the same global batch.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from honed.errors import UserError

log = logging.getLogger("honed")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1


def launched_world() -> World:
    """The worker's place as torchrun's environment variables describe it (a single worker without them)."""
    env = os.environ
    return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def start(device: torch.device, strategy: str = "ddp") -> tuple[World, torch.device]:
    """Join the process group torchrun set up (NCCL on CUDA, gloo otherwise); picks this worker's GPU.

    FSDP needs a process group even for one worker: without torchrun, a group of one is made.
    """
    world = launched_world()
    if not world.parallel and strategy != "fsdp":
        return world, device
    if device.type == "cuda":
        if torch.cuda.device_count() <= world.local_rank:
            raise UserError(f"--nproc: worker {world.local_rank} has no GPU of its own "
                            f"({torch.cuda.device_count()} visible); use at most that many workers per machine")
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = dt.timedelta(minutes=30)
        if "MASTER_ADDR" in os.environ:
            dist.init_process_group(backend, timeout=timeout)
        else:
            dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1,
                                    timeout=timeout)
    return world, device


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.parallel:
        dist.barrier()


def share(rows: torch.Tensor, world: World) -> tuple[torch.Tensor, float]:
    """This worker's contiguous share of a global batch's row indices, and its weight.

    The weight is (rows here / rows in the batch) * workers: DDP divides the summed
    gradients by the number of workers, so the result is the global batch's mean
    gradient even when shares differ by a row. A worker whose share is empty (a last
    batch smaller than the world) still runs one row, weighted zero, because every
    worker must take part in each gradient all-reduce.
    """
    if not world.parallel:
        return rows, 1.0
    mine = torch.tensor_split(rows, world.size)[world.rank]
    if len(mine) == 0:
        return rows[:1], 0.0
    return mine, len(mine) / len(rows) * world.size


def all_sum(value: torch.Tensor, world: World) -> torch.Tensor:
    """Sum of a tensor over all workers (itself when alone)."""
    if world.parallel:
        value = value.clone()
        dist.all_reduce(value)  # epoch_loss lives on the worker's device, which NCCL needs
    return value


def gather_rows(local: torch.Tensor, counts: list[int], world: World) -> torch.Tensor:
    """All workers' rows concatenated in rank order; `counts` are the rows each worker holds."""
    if not world.parallel:
        return local
    home = local.device
    padded = local.new_zeros((max(counts), *local.shape[1:]))
    padded[: len(local)] = local
    if dist.get_backend() == "nccl":  # NCCL moves GPU tensors only
        padded = padded.cuda()
    parts = [torch.empty_like(padded) for _ in range(world.size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n] for p, n in zip(parts, counts)]).to(home)


def broadcast_text(text: str, world: World, limit: int = 4096) -> str:
    """Rank 0's string on every worker (e.g. the run directory it created)."""
    if not world.parallel:
        return text
    data = torch.zeros(limit, dtype=torch.uint8)
    raw = text.encode()[:limit] if world.main else b""
    data[: len(raw)] = torch.tensor(list(raw), dtype=torch.uint8)
    if dist.get_backend() == "nccl":
        data = data.cuda()
    dist.broadcast(data, src=0)
    return bytes(data.cpu().tolist()).rstrip(b"\0").decode()


def wrap(model: nn.Module, strategy: str, world: World, device: torch.device) -> nn.Module:
    """The module the training step calls: the model itself, DDP around it, or the model sharded by FSDP.

    With FSDP the model is sharded in place (every Linear, Conv, Embedding and recurrent
    layer becomes its own unit), so the optimizer must be built after this call.
    """
    if not world.parallel and strategy != "fsdp":
        return model
    if strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        # the mesh names the workers' device type: CPU workers on a machine with GPUs shard over gloo
        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
        for module in model.modules():
            if module is not model and isinstance(module, SHARDED_UNITS):
                fully_shard(module, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


SHARDED_UNITS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Embedding, nn.EmbeddingBag, nn.LSTM, nn.GRU)


def gathered_model(model: nn.Module, strategy: str, build) -> nn.Module:
    """A plain module with all the weights: FSDP's shards gathered into a fresh `build()` (a collective)."""
    if strategy != "fsdp":
        return model
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    plain = build()
    if full:  # only the main worker receives the gathered weights
        plain.load_state_dict(full)
    return plain.eval()
