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
the same two steps, so the ranks agree through an all-reduce of the flag after every step (max: one rank's
signal stops all). That all-reduce is one scalar per step: on NCCL it also waits for the step's kernels, which a
DDP step already does for its gradient all-reduce.

Handlers can only be installed from the main thread; elsewhere (a training run inside a worker thread) this
does nothing and Ctrl-C behaves as Python's default.
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import torch

from . import distributed

SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)


class StopOnSignal:
    """Context manager: while active, SIGINT / SIGTERM request a stop after the current step."""

    def __init__(self, message: bool = True):
        self.requested: str | None = None        # name of the first signal received
        self.message = message
        self._previous: dict[int, Any] = {}

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
        """Whether any rank got a signal; every rank returns the same answer (one all-reduce under DDP)."""
        if not world.enabled:
            return self.requested is not None
        device = torch.device("cuda", world.local_rank) if world.backend == "nccl" else torch.device("cpu")
        flag = torch.tensor([1.0 if self.requested is not None else 0.0], device=device)
        distributed.all_reduce_sum_(flag, world)
        return bool(flag.item() > 0)
