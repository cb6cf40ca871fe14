"""Typed training configuration: dataclasses, presets, overrides, validation, JSON round trip.

One source of truth (DESIGN.md principle 4): ``resolve(preset, config_file, overrides)`` starts from
``TrainConfig()``, applies the preset's values, then a YAML/JSON file, then ``--set key=value`` overrides, and
validates the result. Unknown keys and wrong types fail with the valid choices. The resolved config is saved
as ``config.json`` in every run and inside every checkpoint, so a run can always be rebuilt.

Override keys are dotted paths (``g_opt.lr=1e-4``, ``data.resolution=64``). Two conveniences keep the common
case short: a top-level key that is an option of the recipe goes to ``opts`` (``--set loss=hinge``), and a key
under ``G.`` / ``D.`` that is not a ``NetConfig`` field is a constructor argument of that network
(``--set G.ngf=32``), checked against the network's signature.
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


@dataclass
class NetConfig:
    image: str = "dcgan"            # network (registry name) used for image data
    vector: str = "mlp"             # network used for vector data (2-D toys, tabular)
    image_kwargs: dict = field(default_factory=dict)   # constructor arguments of the image network
    vector_kwargs: dict = field(default_factory=dict)  # constructor arguments of the vector network
    init: str = "default"           # weight initialisation: default | normal02 | he | xavier | orthogonal


@dataclass
class OptConfig:
    name: str = "adam"              # adam | rmsprop | sgd
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
    g_opt: OptConfig = field(default_factory=OptConfig)
    d_opt: OptConfig = field(default_factory=OptConfig)

    batch_size: int = 64
    kimg: float = 10.0              # training length in thousands of real images shown to D
    d_steps: int = 1                # discriminator updates per generator update
    ema_kimg: float = 0.0           # EMA half-life of the generator in kimg (0 = no EMA)
    ema_rampup: float = 0.0         # StyleGAN2-ADA ramp-up: half-life <= ema_rampup * images seen (0 = off)
    seed: int = 0
    device: str = "auto"            # auto | cpu | cuda | cuda:N
    amp: bool = False               # bfloat16 autocast on CUDA
    tick_kimg: float = 0.5          # one status line / stats.jsonl record per tick
    snapshot_kimg: float = 2.0      # sample grid + checkpoint every this many kimg (and at the end)
    snapshot_n: int = 64            # images in the snapshot grid
    keep_snapshots: bool = True     # keep ckpt-<kimg>.pt files (latest.pt is always written)
    metrics: list = field(default_factory=list)  # metrics evaluated during training, e.g. ["fid", "kid"]
    metrics_kimg: float = 0.0       # evaluate every this many kimg (0 = only at the end when metrics are set)
    metrics_n: int = 2000           # generated images per evaluation during training
    extractor: str = "auto"         # feature extractor for training-time metrics
    on_nonfinite: str = "stop"      # stop | rollback (reload the last checkpoint and halve the learning rates)
    tensorboard: bool = False
    description: str = ""


NONFINITE_CHOICES = ("stop", "rollback")


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


# ---- overrides ---------------------------------------------------------------------------------------------

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


def _merge(base: dict, update: dict) -> dict:
    """Recursive merge of config sections; free-form dicts (opts, *_kwargs) merge key by key, one level deep."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            free_form = k == "opts" or k.endswith("kwargs")
            out[k] = {**out[k], **v} if free_form else _merge(out[k], v)
        else:
            out[k] = v
    return out


def apply_override(cfg_dict: dict, key: str, value: Any) -> dict:
    """Apply one dotted ``key=value`` to a config dict, routing recipe options and network arguments."""
    parts = key.split(".")
    top = [f.name for f in dataclasses.fields(TrainConfig)]
    if parts[0] not in top:
        # A top-level key that is a recipe option: --set loss=hinge.
        recipe_cls = _recipe_class(cfg_dict.get("recipe", "gan"))
        opt_names = [f.name for f in dataclasses.fields(recipe_cls.Options)]
        if len(parts) == 1 and parts[0] in opt_names:
            return _merge(cfg_dict, {"opts": {parts[0]: value}})
        raise ConfigError(f"Unknown config key {key!r}. Valid top-level keys: {', '.join(top)}; "
                          f"options of recipe {cfg_dict.get('recipe')!r}: {', '.join(opt_names) or '(none)'}.")
    if parts[0] in ("G", "D") and len(parts) == 2:
        net_fields = [f.name for f in dataclasses.fields(NetConfig)]
        if parts[1] not in net_fields:
            return _merge(cfg_dict, {parts[0]: {_kwargs_slot(cfg_dict, parts[0], parts[1]): {parts[1]: value}}})
    nested: Any = value
    for p in reversed(parts):
        nested = {p: nested}
    return _merge(cfg_dict, nested)


def _kwargs_slot(cfg_dict: dict, role: str, arg: str) -> str:
    """Which of image_kwargs / vector_kwargs a ``G.arg`` override belongs to (the network that takes it)."""
    import inspect
    from .nets import networks
    net = {**dataclasses.asdict(NetConfig()), **cfg_dict.get(role, {})}
    takes = []
    for slot in ("image", "vector"):
        reg = networks[role]
        if net[slot] and net[slot] in reg and arg in inspect.signature(reg.get(net[slot]).__init__).parameters:
            takes.append(slot)
    if len(takes) > 1:
        # Both networks take the argument: it is meant for the one this data will use.
        from .data import data_kinds
        kinds = data_kinds(dataclass_from_dict(DataConfig, cfg_dict.get("data", {}), "config.data"))
        if kinds and kinds[0] == "vector":
            takes = ["vector"]
    if not takes:
        reg = networks[role]
        valid = {s: sorted(p for p in inspect.signature(reg.get(net[s]).__init__).parameters if p != "self")
                 for s in ("image", "vector") if net[s] and net[s] in reg}
        raise ConfigError(f"Unknown network argument {role}.{arg}. {role}'s networks take: "
                          + "; ".join(f"{net[s]} ({s}): {', '.join(v)}" for s, v in valid.items()) + ".")
    return takes[0] + "_kwargs"


def _recipe_class(name: str):
    from .recipes import recipes
    return recipes.get(name)


# ---- resolution --------------------------------------------------------------------------------------------

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


def resolve(preset: str | None = None, config_file: str | None = None,
            overrides: list[str] | dict | None = None) -> TrainConfig:
    """Preset -> file -> overrides -> validated ``TrainConfig``."""
    from .presets import get_preset
    items = list(overrides.items()) if isinstance(overrides, dict) else [split_override(o) for o in (overrides or [])]
    file_items = _flatten(load_file(config_file)) if config_file else []

    def layer(per_kind: dict | None) -> dict:
        cfg_dict = to_dict(TrainConfig())
        if preset:
            values = get_preset(preset)
            kinds_table = values.pop("per_kind", {})
            cfg_dict = _merge(cfg_dict, values)
            if per_kind is not None:
                cfg_dict = _merge(cfg_dict, kinds_table.get(per_kind, {}))
            cfg_dict["preset"] = preset
        for key, value in [*file_items, *items]:  # the user's values always win over the preset's
            cfg_dict = apply_override(cfg_dict, key, value)
        return cfg_dict

    cfg_dict = layer(None)
    # A preset may hold values for one kind of data (e.g. longer runs and a 2-D latent for the 2-D toys):
    # find the kind of the data the user chose, then lay the preset's values for that kind under the user's.
    if preset and get_preset(preset).get("per_kind"):
        from .data import data_kinds
        kinds = data_kinds(from_dict(cfg_dict).data)
        if kinds and kinds[0] in get_preset(preset)["per_kind"]:
            cfg_dict = layer(kinds[0])
    cfg = from_dict(cfg_dict)
    validate(cfg)
    return cfg


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "opts" and not k.endswith("kwargs") and v:
            out.extend(_flatten(v, key + "."))
        elif k == "opts" and isinstance(v, dict):
            out.extend((f"{kk}", vv) for kk, vv in v.items())
        else:
            out.append((key, v))
    return out


def split_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"Override {text!r} must look like key=value (e.g. batch_size=128, g_opt.lr=1e-4).")
    key, value = text.split("=", 1)
    return key.strip(), parse_value(value)


def validate(cfg: TrainConfig) -> None:
    """Checks that need more than types: ranges, choices, recipe options, network names and arguments."""
    from .nets import check_kwargs, inits, networks
    from .train import optimizers
    recipe_cls = _recipe_class(cfg.recipe)
    recipe_cls.parse_options(cfg.opts)
    positive = {"batch_size": cfg.batch_size, "d_steps": cfg.d_steps, "snapshot_n": cfg.snapshot_n}
    for k, v in positive.items():
        if v < 1:
            raise ConfigError(f"{k} must be at least 1, got {v}.")
    for k in ("kimg", "tick_kimg", "snapshot_kimg"):
        if getattr(cfg, k) <= 0:
            raise ConfigError(f"{k} must be positive, got {getattr(cfg, k)}.")
    for k in ("ema_kimg", "ema_rampup", "metrics_kimg"):
        if getattr(cfg, k) < 0:
            raise ConfigError(f"{k} must be >= 0, got {getattr(cfg, k)}.")
    if cfg.on_nonfinite not in NONFINITE_CHOICES:
        raise ConfigError(f"on_nonfinite must be one of {', '.join(NONFINITE_CHOICES)}, got {cfg.on_nonfinite!r}.")
    if cfg.data.channels not in (0, 1, 3):
        raise ConfigError(f"data.channels must be 0 (keep), 1 or 3, got {cfg.data.channels}.")
    if cfg.data.resolution < 0:
        raise ConfigError(f"data.resolution must be >= 0, got {cfg.data.resolution}.")
    if cfg.data.split not in ("train", "test"):
        raise ConfigError(f"data.split must be train or test, got {cfg.data.split!r}.")
    if cfg.data.direction not in ("AtoB", "BtoA"):
        raise ConfigError(f"data.direction must be AtoB or BtoA, got {cfg.data.direction!r}.")
    if not (cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:")):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}.")
    for role in ("G", "D"):
        net: NetConfig = getattr(cfg, role)
        inits.get(net.init) if net.init != "default" else None
        for slot in ("image", "vector"):
            arch = getattr(net, slot)
            if arch:
                check_kwargs(networks[role].get(arch).__init__, getattr(net, f"{slot}_kwargs"), f"{role} ({arch})")
    for name in ("g_opt", "d_opt"):
        optimizers.get(getattr(cfg, name).name)
        if getattr(cfg, name).lr <= 0:
            raise ConfigError(f"{name}.lr must be positive, got {getattr(cfg, name).lr}.")
    if cfg.metrics:
        from .metrics import metric_names
        unknown = [m for m in cfg.metrics if m.partition("@")[0] not in metric_names()]  # "fid@classifier:clf.pt"
        if unknown:
            raise ConfigError(f"Unknown metric(s) {unknown}. Valid metrics: {', '.join(metric_names())}.")
        from .metrics import metrics as metric_specs
        if recipe_cls.sampler_kind != "translate":
            paired_only = [m for m in cfg.metrics if metric_specs.get(m.partition("@")[0]).output == "pairs"]
            if paired_only:
                raise ConfigError(f"Metrics {paired_only} score image-to-image translators (pix2pix, cyclegan); "
                                  f"recipe {cfg.recipe!r} samples from noise (use fid, kid, is, pr, dc, modes or toy).")


def save_json(cfg: TrainConfig, path: str | Path) -> None:
    from .checkpoint import atomic_write_text
    atomic_write_text(Path(path), json.dumps(to_dict(cfg), indent=2) + "\n")
