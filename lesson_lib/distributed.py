"""Data-parallel training under torchrun: which process this is, and the few collectives the trainer needs.

Without torchrun (WORLD_SIZE unset) every function here is a no-op for one process, so the rest of
the package calls them unconditionally.
"""
from __future__ import annotations

import atexit
import os
import sys
from typing import Any

import torch


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) under torchrun; (0, 1) otherwise. Only rank 0 writes files."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: torch.device) -> torch.device:
    """Join the process group torchrun describes (once); under CUDA each process takes GPU LOCAL_RANK."""
    if rank_and_world()[1] == 1:
        return device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        # leave the group before the interpreter exits: a process that exits with the group's threads
        # still running can die of "terminate called without an active exception" (seen under load)
        atexit.register(_teardown)
    return device


def _teardown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def exit_process(code: int) -> None:
    """End this process with exit status `code`; under torchrun, leave the group first and skip the
    interpreter's teardown.

    A torchrun process that returns normally can die of "terminate called without an active exception"
    after its work is done (about one run in twenty on a loaded 2-core machine): a thread of the process
    group is still joinable when C++ destroys it at exit. So a process that succeeded waits for the
    others, every process leaves the group, flushes its output and exits at once (os._exit).
    """
    if rank_and_world()[1] > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            if code == 0:
                dist.barrier()  # nobody leaves while another still talks (a failed process makes torchrun stop all)
            dist.destroy_process_group()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def broadcast(value: Any) -> Any:
    """Rank 0's `value`, on every process."""
    if rank_and_world()[1] == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any) -> list[Any]:
    """`value` from every process, in rank order (just [value] for one process)."""
    world = rank_and_world()[1]
    if world == 1:
        return [value]
    import torch.distributed as dist

    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, value)
    return gathered


def mean(value: torch.Tensor) -> torch.Tensor:
    """The average of a tensor over processes (the tensor itself for one process)."""
    world = rank_and_world()[1]
    if world == 1:
        return value
    import torch.distributed as dist

    value = value.detach().clone()
    dist.all_reduce(value)
    return value / world


def any_true(flag: bool, device: torch.device) -> bool:
    """Whether `flag` is set on any process (nccl reduces GPU tensors only, hence `device`)."""
    if rank_and_world()[1] == 1:
        return flag
    import torch.distributed as dist

    tensor = torch.tensor([float(flag)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())
