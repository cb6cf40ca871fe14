"""Ctrl-C that keeps the work: SIGINT / SIGTERM finish the current step, checkpoint there, and stop.

    with StopOnSignal() as stop:
        while ...:
            trainer.train_step()
            if stop.requested_on_any_rank(world):
                ...save latest.pt, raise TrainingInterrupted

The first signal only sets a flag (the step in flight completes: no half-applied optimiser update reaches the
checkpoint); a second one aborts at once with ``KeyboardInterrupt`` (latest.pt then holds the last snapshot).
SIGTERM is handled too: it is what torchrun's agent, a job scheduler (SLURM, Kubernetes) or ``kill`` sends
before killing a process. Under torchrun a terminal's Ctrl-C reaches every worker, but not necessarily between
the same two steps, so the ranks agree through an all-reduce of the flag after every step (sum: one rank's
signal stops all). The reduction is pipelined so that it costs no host synchronisation per step: step k's flag
is reduced asynchronously and its result copied to pinned host memory behind an event; after step k + 1 every
rank waits for that event (already complete unless the host runs more than a step ahead of the device) and reads
the same value, so all ranks stop after the same step, one step after the signal.

Handlers can only be installed from the main thread; elsewhere (a training run inside a worker thread) this
does nothing and Ctrl-C behaves as Python's default.
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import torch


SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)


class StopOnSignal:
    """Context manager: while active, SIGINT / SIGTERM request a stop after the current step."""

    def __init__(self, message: bool = True):
        self.requested: str | None = None        # name of the first signal received
        self.message = message
        self._previous: dict[int, Any] = {}
        self._pending: Any = None                  # (reduced flag, CUDA event) of the previous step, under DDP

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested is not None:                     # the second signal: stop now, without a checkpoint
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        if self.message:
            print(f"\n{self.requested}: finishing this step and saving a checkpoint (again to abort at once).",
                  file=sys.stderr, flush=True)

    def requested_on_any_rank(self, world: Any) -> bool:
        """Whether any rank got a signal; every rank returns the same answer after the same step (under DDP the
        answer is the all-reduced flag of the previous step: see the module docstring)."""
        if not world.enabled:
            return self.requested is not None
        from torch import distributed as dist
        cuda = world.backend == "nccl"
        device = torch.device("cuda", world.local_rank) if cuda else torch.device("cpu")
        flag = torch.tensor([1.0 if self.requested is not None else 0.0], device=device)
        work = dist.all_reduce(flag, op=dist.ReduceOp.SUM, async_op=True)
        if cuda:
            work.wait()                                   # orders the copy after the reduction on the stream
            host = torch.empty(1, pin_memory=True)
            host.copy_(flag, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            pending = (host, done)
        else:
            work.wait()                                   # gloo: the reduction runs on the host anyway
            pending = (flag, None)
        previous, self._pending = getattr(self, "_pending", None), pending
        if previous is None:
            return False
        value, event = previous
        if event is not None:
            event.synchronize()                           # the previous step's reduction, not this step's kernels
        return bool(value.item() > 0)
