"""Multi-GPU data parallelism: the process group, DistributedDataParallel for GAN players, small collectives.

One process per GPU, started by torchrun (``gankit train --gpus N`` -> ``launch_torchrun``). Every rank builds
the same recipe from the same config, draws the same global batch from the same seed and trains on its
``rank_slice`` of it; DDP averages the gradients, so one step on N ranks x B rows equals one step on one
process x N*B rows when the losses are means over the batch (tests/test_distributed.py checks it to float
tolerance, gradient penalty included). The engine calls, in this order:

    world  = init_world(device.type)              # joins the group torchrun describes (or one that exists)
    device = device_for(world, device)            # cuda:LOCAL_RANK on each rank
    ... build the recipe on device, with every parameter still requires_grad=True ...
    D = wrap_ddp(D, world, device); G = wrap_ddp(G, world, device)   # rank 0's weights broadcast to all
    per step: real = global_batch[rank_slice(world, B)]; the trainable player called normally, the frozen one
              inside ``no_sync(net)`` (or torch.no_grad()); ``any_true(nonfinite, world)`` so all ranks stop
    per tick: all_reduce_mean_(stats, world); files written where world.is_main
    metrics:  evaluate(..., shard=world.metrics_shard())
    shutdown(world)

What we found (torch 2.14, gloo on the CPU; references in brackets):

* Gradient penalty / R1 through a DDP module works: ``torch.autograd.grad(D(x).sum(), x, create_graph=True)``
  differentiates w.r.t. the *input* only, so DDP's per-parameter hooks (on the AccumulateGrad nodes) do not
  fire for it; the final ``loss.backward()`` reaches every parameter through the first- and second-order paths,
  the autograd engine sums both into one AccumulateGrad call per parameter, and DDP all-reduces that once. The
  penalty's input gradients are per-rank (never all-reduced), which is what the per-sample penalty needs:
  pytorch/pytorch#63812 calls this the "least bad practice". D may be called several times (real, fake,
  interpolates) before one backward: DDP's reducer only counts hooks. Measured equal to one process (1e-6).
* A penalty-ONLY loss (the lazy R1 phase, ``every=16``) does not reach the last layer's bias: d logits / d x
  does not depend on it. Its hook never fires, the bucket never all-reduces, and the gradients silently stay
  per-rank (measured: 3 of 4 parameter gradients differ from one process), and the next synced backward raises
  "Expected to have finished reduction in the prior iteration" [pytorch/pytorch#47562]. The fix, as in
  StyleGAN2-ADA's loss.py: add ``0 * logits.sum()`` to the penalty so every parameter is in the graph (the
  engine's DataParallel strategy adds ``0 * sum(p)`` over the phase optimiser's parameters to every loss; measured
  equal to one process). ``find_unused_parameters=True`` is no fix: the bias IS reachable from the output, so
  DDP still waits for it (tested). ``loss.backward(create_graph=True)`` on a DDP output is not supported
  (pytorch/pytorch#63812, #48531: grads of grads are never synced, and it leaks). ``static_graph=True`` is no fit:
  a GAN player's graph changes between phases (D step, lazy R1, frozen in the G step).
* Frozen players: DDP takes the parameters that require grad AT CONSTRUCTION, so wrap before any phase toggles
  ``requires_grad`` (a net wrapped while frozen would never be synced). In a phase where a net is frozen, call
  it inside ``no_sync(net)`` (StyleGAN2-ADA's ``ddp_sync(module, sync=False)``): the forward then skips the
  reducer's bookkeeping; if it did not, a partly frozen net would leave the reducer waiting for hooks that never
  fire. A whole frozen net called synced happened to work on torch 2.14 (no hook fired at all, nothing pending),
  but we do not rely on it. Gradient accumulation uses the same ``no_sync`` for all but the last micro-batch.
* ``find_unused_parameters=False`` (default here): a graph walk per forward is skipped, and with the rules
  above every trainable parameter is used in each synced backward. A network with a conditionally unused part
  passes ``find_unused_parameters=True`` to ``wrap_ddp``.
* Buffers are NOT synced in each forward (``forward_sync_buffers=False``; on a torch without it,
  ``broadcast_buffers=False`` plus our own broadcast at wrap time): the sync is a collective inside every forward
  (a hang if ranks ever call a net a different number of times, and a cost per call), and it writes in place into
  buffers that an earlier forward of the same step may have saved for backward (spectral norm's u, eval-mode batch
  norm). Buffers start equal (synced at construction); spectral-norm vectors then stay equal because weights do;
  SyncBatchNorm's running statistics are computed from all-reduced moments, so they stay equal too. On the CPU
  plain batch norm keeps per-rank running statistics (rank 0's are checkpointed). StyleGAN2-ADA also turns buffer
  broadcasting off. (The known in-place error of two D calls with broadcasting on did not reproduce with CPU batch
  norm.)
* The double backward may warn "Grad strides do not match bucket view strides" once: a gradient of a [1, C]
  weight built by the second-order path has strides (1, 1). Harmless (a copy into the bucket).

Multi-machine runs: start the same command on every machine with torchrun's rendezvous options instead of
``--standalone``: ``torchrun --nnodes=2 --node_rank=0|1 --nproc_per_node=8 --rdzv_backend=c10d
--rdzv_endpoint=HOST:PORT -m gankit train ...`` (HOST: a machine all can reach, usually node 0; any free PORT;
``--rdzv_id`` to tell concurrent jobs apart). RANK is then global and LOCAL_RANK per machine; ``init_world``
needs nothing else. Run directories, reference caches and checkpoints are written by global rank 0 only, so
give every machine the same shared folder for ``--out`` if the others must read them (resume).
"""
from __future__ import annotations

import contextlib
import inspect
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError, GankitError
from ..nets.base import unwrap  # noqa: F401  (re-exported: the engine's and tests' name for it)

_BACKENDS = {"cuda": "nccl", "cpu": "gloo"}


@dataclass(frozen=True)
class World:
    """Where this process stands among the ranks; ``World()`` is a single process without a group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = field(default=False, repr=False, compare=False)   # init_world created it: shutdown ends it

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files, logs and shows progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (with ``rank`` and ``world_size``, gankit.metrics' ``Shard``)."""
        return all_gather_objects(obj, self)

    def metrics_shard(self) -> "World | None":
        """What ``gankit.metrics.evaluate(shard=...)`` takes (None for one process: nothing to share)."""
        return self if self.enabled else None


# ---- the process group ---------------------------------------------------------------------------------------

def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise GankitError(f"Environment variable {name}={value!r} is not an integer (torchrun sets it).") from None


def init_world(device_type: str) -> World:
    """Join the process group torchrun describes (WORLD_SIZE > 1, RANK, LOCAL_RANK), or use one that exists.

    ``device_type``: "cuda" (backend nccl, one GPU per local rank, ``torch.cuda.set_device(local_rank)``) or
    "cpu" (gloo). A group someone already initialised (a test, a user's script) is used as it is and left to
    them at ``shutdown``. Without torchrun's variables and without a group: ``World()``, one process.
    """
    if device_type not in _BACKENDS and (dist.is_available() and dist.is_initialized()
                                         or (_env_int("WORLD_SIZE") or 1) > 1):
        raise ConfigError(f"Multi-process training runs on {' or '.join(_BACKENDS)} devices, not {device_type!r}.")
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local = _env_int("LOCAL_RANK")
        local_rank = local if local is not None else rank
        backend = str(dist.get_backend())
        if device_type == "cpu" and backend == "nccl":
            raise ConfigError("The existing process group uses nccl, which cannot reduce CPU tensors: initialise "
                              "it with backend='gloo' for CPU training.")
        if device_type == "cuda":
            _check_gpu(local_rank, world_size)
            torch.cuda.set_device(local_rank)
        return World(rank, world_size, local_rank, backend)

    world_size = _env_int("WORLD_SIZE") or 1
    if world_size <= 1:
        return World()
    if not dist.is_available():
        raise GankitError("WORLD_SIZE > 1, but this torch build has no torch.distributed support.")
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK")
    if rank is None or local_rank is None:
        raise GankitError(f"WORLD_SIZE={world_size} is set but RANK / LOCAL_RANK are not: start multi-process "
                          f"runs with `gankit train --gpus N` or torchrun, which set all three.")
    if not 0 <= rank < world_size:
        raise GankitError(f"RANK={rank} is outside 0..{world_size - 1} (WORLD_SIZE={world_size}).")
    backend = _BACKENDS[device_type]
    if device_type == "cuda":
        _check_gpu(local_rank, world_size)
        torch.cuda.set_device(local_rank)       # before the group: NCCL binds each rank's communicator to it
    dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size)
    return World(rank, world_size, local_rank, backend, owns_group=True)


def _check_gpu(local_rank: int, world_size: int) -> None:
    if not torch.cuda.is_available():
        raise ConfigError(f"{world_size} processes were started for CUDA, but CUDA is not available here. Use "
                          f"--device cpu (gloo) or a machine with GPUs.")
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ConfigError(f"Local rank {local_rank} needs GPU {local_rank}, but this machine has {count} "
                          f"visible GPU(s): --gpus (torchrun's --nproc_per_node) must be at most {count}. "
                          f"Check CUDA_VISIBLE_DEVICES.")


def device_for(world: World, requested: torch.device) -> torch.device:
    """The device of this rank: cuda:LOCAL_RANK under DDP on CUDA, else ``requested`` as it is.

    An explicit other index ("cuda:1" on local rank 0) is refused: with several processes each one owns one
    GPU; choose which GPUs take part with CUDA_VISIBLE_DEVICES.
    """
    requested = torch.device(requested)
    if not world.enabled or requested.type != "cuda":
        return requested
    if requested.index is not None and requested.index != world.local_rank:
        raise ConfigError(f"Device {str(requested)!r} was asked for, but under DDP rank {world.rank} uses "
                          f"cuda:{world.local_rank} (its LOCAL_RANK): give --device cuda and pick the GPUs with "
                          f"CUDA_VISIBLE_DEVICES.")
    return torch.device("cuda", world.local_rank)


def shutdown(world: World) -> None:
    """End the process group if ``init_world`` created it (one a caller made is theirs to end)."""
    if world.owns_group and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ---- batches -------------------------------------------------------------------------------------------------

def rank_slice(world: World, n_per_rank: int) -> slice:
    """Rows of a global batch of ``world_size * n_per_rank`` that this rank trains on: [r*n, (r+1)*n)."""
    return slice(world.rank * n_per_rank, (world.rank + 1) * n_per_rank)


def per_rank_batch(world: World, global_batch: int) -> int:
    """``global_batch / world_size``, refused unless it divides (unequal slices would weight ranks unequally)."""
    if global_batch % world.world_size:
        raise ConfigError(f"batch_size={global_batch} cannot be split over {world.world_size} processes; use a "
                          f"multiple of {world.world_size}.")
    return global_batch // world.world_size


# ---- collectives (identity for one process) ------------------------------------------------------------------

def all_reduce_sum_(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Sum over ranks, in place; returns ``tensor``."""
    if world.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean_(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Mean over ranks, in place (floating tensors); returns ``tensor``."""
    if world.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(world.world_size)
    return tensor


def _collective_device(world: World) -> torch.device:
    # NCCL reduces CUDA tensors only; gloo takes CPU ones (and CUDA ones, via a copy).
    return torch.device("cuda", torch.cuda.current_device()) if world.backend == "nccl" else torch.device("cpu")


def any_true(flag: bool | torch.Tensor, world: World) -> bool:
    """True on every rank if ``flag`` (a bool, or any element of a tensor) is true on any rank.

    For decisions that every rank must take together (a non-finite loss stops the run): a rank that stopped
    alone would leave the others waiting in their next collective for ever.
    """
    if torch.is_tensor(flag):
        local = flag.detach().reshape(-1).any().to(torch.int32)
    else:
        local = torch.tensor(int(bool(flag)), dtype=torch.int32)
    if not world.enabled:
        return bool(local)
    local = local.to(_collective_device(world)).reshape(1)
    dist.all_reduce(local, op=dist.ReduceOp.MAX)
    return bool(local.item())


def broadcast_object(obj: Any, world: World, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (picklable) on every rank."""
    if not world.enabled:
        return obj
    box = [obj if world.rank == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: Any, world: World) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank (picklable objects; tensors travel through pickle)."""
    if not world.enabled:
        return [obj]
    out: list[Any] = [None] * world.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(world: World) -> None:
    if world.enabled:
        if world.backend == "nccl":
            dist.barrier(device_ids=[world.local_rank])   # without it NCCL guesses the device and warns
        else:
            dist.barrier()


# ---- DistributedDataParallel ---------------------------------------------------------------------------------

_warned_cpu_bn = False


def _has_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def wrap_ddp(module: nn.Module, world: World, device: torch.device, *,
             find_unused_parameters: bool = False) -> nn.Module:
    """``module`` (on ``device``) in DistributedDataParallel, or as it is for one process.

    Call it once per network after building and moving it, while every parameter that will ever train has
    ``requires_grad=True`` (DDP syncs only those), and before creating optimisers is not needed (the wrapper
    shares the parameters). Rank 0's parameters and buffers are broadcast to every rank here. On CUDA, batch
    norm becomes SyncBatchNorm (statistics over the global batch, as one process would compute); on the CPU
    SyncBatchNorm does not run, so plain batch norm stays and each rank normalises over its own slice (a warning
    says so, once). See the module docstring for why buffers are not synced per forward and why
    ``find_unused_parameters`` defaults to False.
    """
    if not world.enabled:
        return module
    device = torch.device(device)
    if not any(p.requires_grad for p in module.parameters()):
        return module                     # nothing trains (a frozen feature net): DDP refuses such modules
    if device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    elif _has_batch_norm(module):
        global _warned_cpu_bn
        if not _warned_cpu_bn:
            _warned_cpu_bn = True
            warnings.warn("SyncBatchNorm does not run on CPUs: with several CPU processes each rank's batch norm "
                          "normalises over its own slice of the batch, so results differ from one process.",
                          stacklevel=2)
    kwargs: dict[str, Any] = {"find_unused_parameters": find_unused_parameters}
    if device.type == "cuda":
        kwargs.update(device_ids=[device.index], output_device=device.index)
    new_api = "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters
    if new_api:
        kwargs["forward_sync_buffers"] = False         # still synced once at construction
    else:  # pragma: no cover - older torch: broadcast_buffers=False also skips the sync at construction
        kwargs["broadcast_buffers"] = False
        for buf in module.buffers():
            dist.broadcast(buf.data, src=0)
    return nn.parallel.DistributedDataParallel(module, **kwargs)


@contextlib.contextmanager
def no_sync(module: nn.Module) -> Iterator[None]:
    """Calls of ``module`` inside skip DDP's gradient sync: for the frozen player of a phase, and for every
    micro-batch of gradient accumulation but the last. A no-op for plain modules."""
    if isinstance(module, nn.parallel.DistributedDataParallel):
        with module.no_sync():
            yield
    else:
        yield


# ---- launching -----------------------------------------------------------------------------------------------

def strip_gpus_option(argv: list[str]) -> list[str]:
    """argv without ``--gpus N`` / ``--gpus=N`` (the workers must not launch again)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--gpus":
            skip = True
        elif not arg.startswith("--gpus="):
            out.append(arg)
    return out


def torchrun_command(nproc: int, argv: list[str], *, module: str = "gankit") -> list[str]:
    """The torchrun command line ``launch_torchrun`` runs (one machine, a free port chosen by torchrun)."""
    if nproc < 1:
        raise ConfigError(f"--gpus must be at least 1, got {nproc}.")
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone",
            "-m", module, *strip_gpus_option(list(argv))]


def launch_torchrun(nproc: int, argv: list[str], *, module: str = "gankit") -> int:
    """``gankit train --gpus N ...``: run the same command on N local processes through PyTorch's launcher.

    torchrun (``torch.distributed.run``) sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT for each
    worker, picks a free port with ``--standalone``, and stops all workers if one fails; each worker runs
    ``python -m gankit <argv without --gpus>`` and finds its place with ``init_world``. Returns torchrun's exit
    code (non-zero when any worker failed). For several machines see the module docstring (``--nnodes``,
    ``--node_rank``, ``--rdzv_backend=c10d --rdzv_endpoint=HOST:PORT``): run torchrun yourself on each.
    """
    if _env_int("WORLD_SIZE") not in (None, 1) or _env_int("LOCAL_RANK") is not None:
        raise GankitError("--gpus was given inside a process that torchrun already started: drop --gpus, or "
                          "start gankit without torchrun.")
    return subprocess.call(torchrun_command(nproc, argv, module=module))
