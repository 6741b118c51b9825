"""Data-parallel training under torchrun: which process this is, and the few collectives the trainer needs.

Without torchrun (WORLD_SIZE unset) every function here is a no-op for one process, so the rest of
the package calls them unconditionally.

Two ways for torchrun's processes to share the work (`PARALLEL_MODES`), each process training on
its own batches:
- ddp: every process holds the whole model, its gradients and its optimizer state; gradients are
  averaged across processes (all-reduce) before each update.
- fsdp: each process holds a 1/N shard of each of them (FSDP2, `fully_shard`, ZeRO stage 3); a
  block's weights are gathered whole just before its forward and backward pass and freed after,
  and gradients are averaged and split back into shards (reduce-scatter). Checkpoints stay whole:
  `full_model_state` and `full_optimizer_state` gather the shards on rank 0, which writes them.
"""
from __future__ import annotations

import atexit
import os
import sys
from typing import Any

import torch
import torch.nn as nn

PARALLEL_MODES = ("ddp", "fsdp")  # how torchrun's processes share a model: whole copies | shards


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


def shard(model: nn.Module, device: torch.device) -> nn.Module:
    """Shard `model` over all processes with FSDP2, in place: each transformer block (a model's
    `blocks`, where it has them) is one unit gathered and freed on its own, the rest (embeddings,
    final norm, head, with the tied weight) is the root's unit. Its parameters become DTensors of
    which this process holds one shard (`.to_local()`). Make the optimizer after this."""
    import warnings

    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    # a GPT block also returns its keys and values for the KV cache, views FSDP warns about in case
    # they are changed in place; nothing does that
    warnings.filterwarnings("ignore", message="FSDP2-wrapped module .* returned a view tensor")
    mesh = init_device_mesh(device.type, (rank_and_world()[1],))
    for block in getattr(model, "blocks", []):
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def is_sharded(model: nn.Module) -> bool:
    """Whether `shard` was applied to `model` (never in a single process)."""
    if rank_and_world()[1] == 1:
        return False
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _full_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # gathered whole and moved to the CPU one tensor at a time, kept by rank 0 only
    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A sharded model's whole state dict, on rank 0 ({} on the others). Every process must call it.

    A tied weight comes back under each of its names, as separate tensors."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full_options())


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A sharded model's optimizer state gathered whole, on rank 0 ({} on the others), in the layout of
    `optimizer.state_dict()` (parameters numbered in order), so one process can load it into a plain
    optimizer. Every process must call it."""
    if not optimizer.state:  # torch's gatherer would take a zero step to create the state: no update, yet
        return optimizer.state_dict() if rank_and_world()[0] == 0 else {}  # AdamW's step counts would move on
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    by_name = get_optimizer_state_dict(model, optimizer, options=_full_options())  # keyed by parameter name
    if not by_name:
        return {}
    number = {name: i for i, name in enumerate(_parameter_names(model, optimizer))}
    return {"state": {number[name]: value for name, value in by_name["state"].items()},
            "param_groups": [{**group, "params": [number[name] for name in group["params"]]}
                             for group in by_name["param_groups"]]}


def load_full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Put a whole optimizer state (as `full_optimizer_state` returns it) into a sharded model's
    optimizer: each process keeps the shard of its own parameters."""
    if not state["state"]:
        optimizer.load_state_dict(state)  # no update yet: only the settings of each group
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _parameter_names(model, optimizer)
    by_name = {"state": {names[i]: value for i, value in state["state"].items()},
               "param_groups": [{**group, "params": [names[i] for i in group["params"]]}
                                for group in state["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, by_name, options=StateDictOptions(full_state_dict=True))


def _parameter_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The name of each parameter the optimizer updates, in its order (a tied weight: its first name)."""
    name_of = {id(p): name for name, p in model.named_parameters()}
    return [name_of[id(p)] for group in optimizer.param_groups for p in group["params"]]


def clip_grad_norm(parameters, max_norm: float) -> float:
    """Scale the gradients down so that their global norm is at most `max_norm`; the norm before.

    Under FSDP each process holds a shard of each gradient (a DTensor): torch's clip_grad_norm_
    combines the shards' norms across processes, so every process clips by the same, global norm."""
    norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    if hasattr(norm, "full_tensor"):  # a DTensor, replicated on every process
        norm = norm.full_tensor()
    return norm.item()
