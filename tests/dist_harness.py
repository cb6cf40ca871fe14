"""Run a function on N CPU processes joined in one gloo group, the way torchrun would start them.

    results = run_world(fn, 2, tmp_path, arg)    # [fn(0, 2, arg), fn(1, 2, arg)], or raises with rank r's traceback

Each child is a fresh interpreter (multiprocessing "spawn": no forked torch state, no inherited threads), sets
RANK / WORLD_SIZE / LOCAL_RANK like torchrun, uses one intra-op thread (two cores shared by pytest-xdist
workers), and joins the group through a FILE rendezvous under ``tmp_path``: no TCP port, so two tests running at
once under ``pytest -n 2`` cannot clash. ``fn`` and its arguments must be picklable (module-level functions),
and so must its result. A child that hangs (a collective one rank never reaches) is killed after ``timeout``.
"""
from __future__ import annotations

import itertools
import os
import pickle
import traceback
from pathlib import Path
from typing import Any, Callable

import torch.multiprocessing as mp

_worlds = itertools.count()    # several worlds in one test get separate rendezvous files


def _child(fn: Callable[..., Any], rank: int, world_size: int, rdzv: str, out: str, args: tuple) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(world_size))
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"file://{rdzv}", rank=rank, world_size=world_size)
        try:
            result: Any = ("ok", fn(rank, world_size, *args))
        finally:
            dist.destroy_process_group()
    except BaseException:                      # noqa: BLE001 - the parent re-raises it with the rank's traceback
        result = ("error", traceback.format_exc())
    with open(out, "wb") as f:
        pickle.dump(result, f)


def run_world(fn: Callable[..., Any], world_size: int, tmp_path: str | os.PathLike, *args: Any,
              timeout: float = 120.0) -> list[Any]:
    """``[fn(rank, world_size, *args) for rank in range(world_size)]``, each rank in its own process."""
    tmp = Path(tmp_path)
    tag = next(_worlds)
    rdzv = tmp / f"rdzv-{os.getpid()}-{tag}"     # the file must not exist before the group forms
    outs = [tmp / f"result-{os.getpid()}-{tag}-{r}.pkl" for r in range(world_size)]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_child, args=(fn, r, world_size, str(rdzv), str(outs[r]), args), daemon=True)
             for r in range(world_size)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for r in hung:
        procs[r].kill()
        procs[r].join()
    results, errors = [], []
    for r, out in enumerate(outs):
        if not out.is_file():
            why = f"hung for {timeout:.0f} s and was killed" if r in hung else f"exited with code {procs[r].exitcode}"
            errors.append(f"rank {r} {why} without a result")
            continue
        status, value = pickle.loads(out.read_bytes())
        if status == "error":
            errors.append(f"rank {r} raised:\n{value}")
        results.append(value)
    if errors:
        raise RuntimeError("\n".join(errors))
    return results
