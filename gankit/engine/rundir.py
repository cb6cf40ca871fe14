"""Run directories (numbered, created exclusively, never reused) and the config rules of ``--resume``."""
from __future__ import annotations

import re
from pathlib import Path

from ..config import TrainConfig, field_names, from_dict, get_dotted, to_dict
from ..errors import ConfigError


def new_run_dir(root: str | Path, cfg: TrainConfig) -> Path:
    """runs/00007-<preset>-<data>: numbered, created exclusively, never reused."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    data_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(cfg.data.spec.rstrip("/")).stem or cfg.data.spec)[:40]
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.preset or cfg.recipe)
    while True:
        nums = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"^(\d{5})-", p.name))]
        run_dir = root / f"{(max(nums) + 1 if nums else 0):05d}-{tag}-{data_name}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:  # another process took this number: try the next
            continue


# What may differ between the run and its continuation: the schedule, the outputs, where it runs. Everything
# else (networks, losses, batch, data, strategies that change the arithmetic) would make the resumed run a
# different experiment than the one whose state it holds.
RESUME_CHANGEABLE = ("kimg", "tick_kimg", "snapshot_kimg", "snapshot_n", "keep_snapshots", "metrics", "metrics_kimg",
                     "metrics_n", "extractor", "on_nonfinite", "tensorboard", "device", "description")


def merge_resume_config(saved: TrainConfig, requested: TrainConfig | None, explicit: set[str]) -> TrainConfig:
    """The checkpoint's config with the schedule keys the user explicitly changed; anything else is an error."""
    if requested is None:
        return saved
    # A resume continues the run it names: a different family is another experiment (start it with --init-from).
    for key, asked in (("recipe", requested.recipe), ("preset", requested.preset)):
        if asked and asked != getattr(saved, key):
            raise ConfigError(f"Cannot resume with {key} {asked!r}: the run was trained with {key} "
                              f"{getattr(saved, key)!r}. --resume continues that run; to start a new {asked!r} run "
                              f"from its weights use --init-from instead.")
    saved_d, req_d = to_dict(saved), to_dict(requested)
    for key in explicit:
        top = key.split(".")[0]
        if top not in RESUME_CHANGEABLE and get_dotted(saved_d, key) != get_dotted(req_d, key):
            raise ConfigError(f"Cannot change {key!r} when resuming: the run was trained with "
                              f"{get_dotted(saved_d, key)!r}. Keys that may change on resume: "
                              f"{', '.join(RESUME_CHANGEABLE)}.")
    # A short key routed elsewhere (--set privacy.epsilon=3 -> strategy.privacy, loss=hinge -> opts.loss) is not
    # where it lands: judge what it changed, section by section.
    routed = sorted(k for k in explicit if k.split(".")[0] not in field_names(TrainConfig))
    changed = sorted(t for t in saved_d if t not in RESUME_CHANGEABLE and saved_d[t] != req_d.get(t))
    if routed and changed:
        raise ConfigError(f"Cannot change {', '.join(routed)} when resuming: it changes {', '.join(changed)}, "
                          f"which the run was trained with. Keys that may change on resume: "
                          f"{', '.join(RESUME_CHANGEABLE)}.")
    for key in RESUME_CHANGEABLE:
        if key in {k.split('.')[0] for k in explicit}:
            saved_d[key] = req_d[key]
    return from_dict(saved_d)
