"""Typed training configuration as plain data: dataclasses, dict round trip, dotted overrides, files, JSON.

One source of truth (DESIGN.md principle 4). This module knows no registry and imports no engine code: it says
what a config *is*. What a name *means* (which recipe, which network takes ``ngf``, which options a data kind
has) is checked on the engine side (``gankit.engine.configure``: ``resolve`` and ``validate``), which routes
short override keys (``--set loss=hinge``, ``--set G.ngf=32``) and fails loudly on unknown keys.

The resolved config is saved as ``config.json`` in every run and inside every checkpoint, so a run can always be
rebuilt. Optimisers are a table keyed by the names the recipe declares (``opt.G``, ``opt.D``; a recipe with more
players declares more), so a family with another optimiser needs no new config field.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .io import atomic_write_text


@dataclass
class DataConfig:
    spec: str = "digits"            # builtin name (digits, ring8, grid25, mnist, ...) or a path (folder, .npz)
    spec_b: str = ""                # second folder for two-folder paired / unpaired data (--data-b)
    root: str = ""                  # where builtins that need files look ("" = $GANKIT_DATA or ./data)
    download: bool = False          # builtins that need files download them only when this is set
    resolution: int = 0             # images are resized / centre-cropped to this side (0 = the data's own)
    channels: int = 0               # force 1 (grayscale) or 3 (RGB) channels (0 = the data's own)
    split: str = "train"            # builtins with standard splits: train | test
    direction: str = "AtoB"         # paired / unpaired data: which side is the input
    labels: bool = True             # use class labels when the data has them (conditional recipes need them)
    xflip: bool = False             # augment by horizontal flips (doubles a small image set)
    num_workers: int = 0            # DataLoader workers for data that does not fit in memory
    options: dict = field(default_factory=dict)  # options of the data kind (validated by its registration)


@dataclass
class NetConfig:
    image: str = "dcgan"            # network (registry name) used for image data
    vector: str = "mlp"             # network used for vector data (2-D toys, tabular)
    image_kwargs: dict = field(default_factory=dict)   # constructor arguments of the image network
    vector_kwargs: dict = field(default_factory=dict)  # constructor arguments of the vector network
    init: str = "default"           # weight initialisation: default | normal02 | he | xavier | orthogonal


@dataclass
class OptConfig:
    name: str = "adam"              # adam | rmsprop | sgd (gankit.optim.optimizers)
    lr: float = 2e-4
    betas: tuple = (0.5, 0.999)     # Adam; DCGAN's beta1 = 0.5 (Radford et al. 2016, sec. 4)
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0           # RMSprop / SGD


@dataclass
class TrainConfig:
    preset: str = ""                # the preset these values started from (informational)
    recipe: str = "gan"             # family (registry name in gankit.recipes)
    opts: dict = field(default_factory=dict)   # the recipe's own options (validated against recipe.Options)
    data: DataConfig = field(default_factory=DataConfig)
    G: NetConfig = field(default_factory=NetConfig)
    D: NetConfig = field(default_factory=NetConfig)
    # Hyper-parameters per optimiser the recipe declares (recipe.optimizers()): opt.G.lr=1e-4, opt.D.betas=[0, 0.9].
    # An optimiser without an entry runs its spec's default (else OptConfig()); presets fill in G and D.
    opt: dict[str, OptConfig] = field(default_factory=dict)

    batch_size: int = 64            # real images per batch and process (under DDP the global batch is x ranks)
    kimg: float = 10.0              # training length in thousands of real images drawn from the data
    d_steps: int = 1                # discriminator updates per generator update (recipes' default phases)
    ema_kimg: float = 0.0           # EMA half-life of the generator in kimg (0 = no EMA)
    ema_rampup: float = 0.0         # StyleGAN2-ADA ramp-up: half-life <= ema_rampup * images seen (0 = off)
    ema_start_kimg: float = 0.0     # BigGAN: the average copies G exactly until this many kimg (0 = from the start)
    init_from: str = ""             # start from another run's weights (names and shapes that match); not --resume
    seed: int = 0
    device: str = "auto"            # auto | cpu | cuda | cuda:N
    amp: str = "off"                # off | bf16 (autocast) | fp16 (autocast + GradScaler)
    grad_accum: int = 1             # split each batch into this many micro-batches (same update, less memory)
    tick_kimg: float = 0.5          # one status line / stats.jsonl record per tick
    snapshot_kimg: float = 2.0      # snapshot artefacts + checkpoint every this many kimg (and at the end)
    snapshot_n: int = 64            # samples in the snapshot
    keep_snapshots: bool = True     # keep ckpt-<kimg>.pt files (latest.pt is always written)
    metrics: list = field(default_factory=list)  # metrics evaluated during training, e.g. ["fid", "kid"]
    metrics_kimg: float = 0.0       # evaluate every this many kimg (0 = only at the end when metrics are set)
    metrics_n: int = 2000           # generated samples per evaluation during training
    extractor: str = "auto"         # feature extractor for training-time metrics
    on_nonfinite: str = "stop"      # stop | rollback (reload the last checkpoint and halve the learning rates)
    # Options of strategies that declare them, by strategy name (--set privacy.epsilon=3 -> strategy.privacy);
    # each strategy's registration types and checks its own section.
    strategy: dict[str, dict] = field(default_factory=dict)
    tensorboard: bool = False
    description: str = ""


# ---- dict <-> dataclass ------------------------------------------------------------------------------------

def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against annotation ``tp``; allow int -> float and list -> tuple, nothing else."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None) and value is None:
                return None
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where} must be {tp}, got {value!r}.")
    if origin is dict:                                   # dict[str, SomeDataclass]: a table of sections
        _, value_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}.")
        if dataclasses.is_dataclass(value_tp):
            return {str(k): v if isinstance(v, value_tp) else dataclass_from_dict(value_tp, v, f"{where}.{k}")
                    for k, v in value.items()}
        return {str(k): _coerce(v, value_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is tuple and isinstance(value, list):
        return tuple(value)
    if tp in (list, dict, tuple, str, int, float, bool):
        if isinstance(value, bool) and tp is not bool:
            raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}.")
        if tp is list and isinstance(value, str):  # "fid,kid" on the command line
            return [v for v in value.split(",") if v]
        if not isinstance(value, tp):
            raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r} ({type(value).__name__}).")
        return value
    return value


def dataclass_from_dict(cls: type, data: dict, where: str) -> Any:
    """Build dataclass ``cls`` from a (nested) dict; unknown keys and wrong types raise ``ConfigError``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {data!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r}. Valid keys: {', '.join(names)}.")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = dataclass_from_dict(tp, value, f"{where}.{key}")
        else:
            kwargs[key] = _coerce(value, tp, f"{where}.{key}")
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict:
    d = dataclasses.asdict(cfg)
    return json.loads(json.dumps(d))  # tuples -> lists: the JSON form is the canonical one


def from_dict(data: dict) -> TrainConfig:
    return dataclass_from_dict(TrainConfig, data, "config")


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


# ---- overrides and files -----------------------------------------------------------------------------------

def parse_value(text: str) -> Any:
    """``--set`` values are YAML scalars/lists: 1e-4, true, [0.5, 0.999], hinge."""
    for number in (int, float):  # PyYAML (YAML 1.1) reads "1e-4" as a string; users mean a number
        try:
            return number(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"Cannot parse value {text!r}: {e}") from None


# Free-form sections merge key by key, one level deep, and are not flattened into dotted keys.
FREE_FORM = ("opts", "options")


def is_free_form(key: str) -> bool:
    return key in FREE_FORM or key.endswith("kwargs")


def merge(base: dict, update: dict) -> dict:
    """Recursive merge of config sections; free-form dicts (opts, options, *_kwargs) merge one level deep."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v} if is_free_form(k) else merge(out[k], v)
        else:
            out[k] = v
    return out


def set_dotted(cfg_dict: dict, key: str, value: Any) -> dict:
    """``a.b.c=value`` laid over a config dict (no routing: the engine's ``apply_override`` routes first)."""
    nested: Any = value
    for part in reversed(key.split(".")):
        nested = {part: nested}
    return merge(cfg_dict, nested)


def get_dotted(d: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def flatten(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """A nested config dict as dotted ``(key, value)`` pairs; recipe options as bare keys (``loss``)."""
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if k == "opts" and isinstance(v, dict) and not prefix:
            out.extend((f"{kk}", vv) for kk, vv in v.items())
        elif isinstance(v, dict) and not is_free_form(k) and v:
            out.extend(flatten(v, key + "."))
        else:
            out.append((key, v))
    return out


def split_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"Override {text!r} must look like key=value (e.g. batch_size=128, opt.G.lr=1e-4).")
    key, value = text.split("=", 1)
    return key.strip(), parse_value(value)


def load_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {str(path)!r} does not exist.")
    try:
        data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except yaml.YAMLError as e:
        raise ConfigError(f"Cannot parse config file {str(path)!r}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {str(path)!r} must hold a mapping of keys to values.")
    return data


def save_json(cfg: TrainConfig, path: str | Path) -> None:
    atomic_write_text(Path(path), json.dumps(to_dict(cfg), indent=2) + "\n")
