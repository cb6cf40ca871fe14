"""Resolving and validating a config against the registries (the engine side of ``gankit.config``).

``resolve(preset, config_file, overrides)`` lays the preset over ``TrainConfig()`` defaults, then the file, then
``--set key=value`` overrides, and validates. Short keys are routed here, where the registries are known:

    loss=hinge           a top-level key that is an option of the recipe      -> opts.loss
    scale=4              else an option of a registered data kind             -> data.options.scale
    G.ngf=32             G.x / D.x that is not a NetConfig field              -> G.image_kwargs.ngf (the network
                                                                                that takes it for this data)
    data.degrade=x4      data.x that is not a DataConfig field but an option  -> data.options.degrade
                         of a registered data kind
    privacy.epsilon=3    <strategy>.x for a strategy that declares options    -> strategy.privacy.epsilon

Unknown keys, wrong types, unknown registry names and bad ranges raise ``ConfigError`` naming the choices.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..config import (DataConfig, NetConfig, TrainConfig, dataclass_from_dict, field_names, flatten, from_dict,
                      load_file, merge, set_dotted, split_override, to_dict)
from ..data import data_kinds, kinds as data_kind_registry, reachable_kinds
from ..errors import ConfigError
from ..nets import check_net_config, kwargs_slot, slot_for
from ..optim import optimizers
from ..presets import get_preset
from ..recipes import recipes
from ..samplers import sampler_kinds
from .strategies import strategy_factories, strategy_options

NONFINITE_CHOICES = ("stop", "rollback")
AMP_CHOICES = ("off", "bf16", "fp16")


def apply_override(cfg_dict: dict, key: str, value: Any) -> dict:
    """Apply one dotted ``key=value`` to a config dict, routing recipe options, network and data-kind options."""
    parts = key.split(".")
    top = field_names(TrainConfig)
    if parts[0] not in top and len(parts) >= 2 and parts[0] in strategy_factories \
            and strategy_factories.get(parts[0]).options is not None:
        # --set privacy.epsilon=3: the options of a strategy that declares them.
        return set_dotted(cfg_dict, "strategy." + key, value)
    if parts[0] not in top:
        # A top-level key that is a recipe option: --set loss=hinge.
        recipe_cls = recipes.get(cfg_dict.get("recipe", "gan"))
        opt_names = field_names(recipe_cls.Options)
        if len(parts) == 1 and parts[0] in opt_names:
            return merge(cfg_dict, {"opts": {parts[0]: value}})
        # Else a top-level key that is an option of a registered data kind: --set scale=4 -> data.options.scale.
        if len(parts) == 1 and any(k.options and parts[0] in field_names(k.options)
                                   for _, k in data_kind_registry.items()):
            return merge(cfg_dict, {"data": {"options": {parts[0]: value}}})
        kind_options = sorted({f for _, k in data_kind_registry.items() if k.options for f in field_names(k.options)})
        raise ConfigError(f"Unknown config key {key!r}. Valid top-level keys: {', '.join(top)}; "
                          f"options of recipe {cfg_dict.get('recipe')!r}: {', '.join(opt_names) or '(none)'}; "
                          f"data-kind options: {', '.join(kind_options) or '(none)'}.")
    if parts[0] in ("G", "D") and len(parts) == 2 and parts[1] not in field_names(NetConfig):
        net = {**dataclasses.asdict(NetConfig()), **cfg_dict.get(parts[0], {})}
        slot = kwargs_slot(net, parts[0], parts[1], lambda: _first_kind(cfg_dict))
        return merge(cfg_dict, {parts[0]: {slot: {parts[1]: value}}})
    if parts[0] == "data" and len(parts) == 2 and parts[1] not in field_names(DataConfig):
        owners = [k.name for _, k in data_kind_registry.items() if k.options and parts[1] in field_names(k.options)]
        if not owners:
            options = sorted({f for _, k in data_kind_registry.items() if k.options for f in field_names(k.options)})
            raise ConfigError(f"Unknown config key {key!r}. Valid data keys: {', '.join(field_names(DataConfig))}"
                              f"; data-kind options: {', '.join(options) or '(none registered)'}.")
        return merge(cfg_dict, {"data": {"options": {parts[1]: value}}})
    return set_dotted(cfg_dict, key, value)


def _first_kind(cfg_dict: dict) -> str | None:
    """The first kind the configured data can be given as, without loading it (None when it cannot be found)."""
    kinds = data_kinds(dataclass_from_dict(DataConfig, cfg_dict.get("data", {}), "config.data"))
    return kinds[0] if kinds else None


def resolve(preset: str | None = None, config_file: str | None = None,
            overrides: list[str] | dict | None = None) -> TrainConfig:
    """Preset -> file -> overrides -> validated ``TrainConfig``."""
    items = list(overrides.items()) if isinstance(overrides, dict) else [split_override(o) for o in (overrides or [])]
    file_items = flatten(load_file(config_file)) if config_file else []

    def layer(per_kind: str | None) -> dict:
        cfg_dict = to_dict(TrainConfig())
        if preset:
            values = get_preset(preset)
            kinds_table = values.pop("per_kind", {})
            cfg_dict = merge(cfg_dict, values)
            if per_kind is not None:
                cfg_dict = merge(cfg_dict, kinds_table.get(per_kind, {}))
            cfg_dict["preset"] = preset
        for key, value in [*file_items, *items]:  # the user's values always win over the preset's
            cfg_dict = apply_override(cfg_dict, key, value)
        return cfg_dict

    cfg_dict = layer(None)
    # A preset may hold values for one kind of data (e.g. longer runs and a 2-D latent for the 2-D toys):
    # find the kind of the data the user chose, then lay the preset's values for that kind under the user's.
    if preset and get_preset(preset).get("per_kind"):
        kinds = data_kinds(from_dict(cfg_dict).data)
        if kinds and kinds[0] in get_preset(preset)["per_kind"]:
            cfg_dict = layer(kinds[0])
    cfg = from_dict(cfg_dict)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Checks that need more than types: ranges, choices, recipe options, network names and arguments, metrics.

    What needs the built recipe (its optimiser names, phases) is checked by ``build``, still before training.
    """
    recipe_cls = recipes.get(cfg.recipe)
    recipe_cls.parse_options(cfg.opts)
    positive = {"batch_size": cfg.batch_size, "snapshot_n": cfg.snapshot_n, "grad_accum": cfg.grad_accum}
    for k, v in positive.items():
        if v < 1:
            raise ConfigError(f"{k} must be at least 1, got {v}.")
    if cfg.d_steps < 0:
        raise ConfigError(f"d_steps must be >= 0, got {cfg.d_steps}.")
    if cfg.batch_size % cfg.grad_accum:
        raise ConfigError(f"batch_size ({cfg.batch_size}) must be a multiple of grad_accum ({cfg.grad_accum}): "
                          "each batch is split into that many equal micro-batches.")
    for k in ("kimg", "tick_kimg", "snapshot_kimg"):
        if getattr(cfg, k) <= 0:
            raise ConfigError(f"{k} must be positive, got {getattr(cfg, k)}.")
    for k in ("ema_kimg", "ema_rampup", "ema_start_kimg", "metrics_kimg"):
        if getattr(cfg, k) < 0:
            raise ConfigError(f"{k} must be >= 0, got {getattr(cfg, k)}.")
    # The loop counts in whole images: an interval that rounds to 0 images would divide by zero (and a run of
    # 0 images would do nothing). A kimg of 0.001 is one image.
    in_images = {"kimg": round(cfg.kimg * 1000), "tick_kimg": int(cfg.tick_kimg * 1000),   # as the loop counts
                 "snapshot_kimg": int(cfg.snapshot_kimg * 1000), "metrics_kimg": int(cfg.metrics_kimg * 1000)}
    for k, images in in_images.items():
        value = getattr(cfg, k)
        if value > 0 and images < 1:
            raise ConfigError(f"{k}={value:g} is less than one image (kimg counts thousands of images; the "
                              f"smallest interval is 0.001).")
    if cfg.metrics_n < 1:
        raise ConfigError(f"metrics_n must be at least 1, got {cfg.metrics_n}.")
    if cfg.data.num_workers < 0:
        raise ConfigError(f"data.num_workers must be >= 0, got {cfg.data.num_workers}.")
    if cfg.on_nonfinite not in NONFINITE_CHOICES:
        raise ConfigError(f"on_nonfinite must be one of {', '.join(NONFINITE_CHOICES)}, got {cfg.on_nonfinite!r}.")
    if cfg.amp not in AMP_CHOICES:
        raise ConfigError(f"amp must be one of {', '.join(AMP_CHOICES)}, got {cfg.amp!r}.")
    if cfg.data.channels not in (0, 1, 3):
        raise ConfigError(f"data.channels must be 0 (keep), 1 or 3, got {cfg.data.channels}.")
    if cfg.data.resolution < 0:
        raise ConfigError(f"data.resolution must be >= 0, got {cfg.data.resolution}.")
    if cfg.data.split not in ("train", "test"):
        raise ConfigError(f"data.split must be train or test, got {cfg.data.split!r}.")
    if cfg.data.direction not in ("AtoB", "BtoA"):
        raise ConfigError(f"data.direction must be AtoB or BtoA, got {cfg.data.direction!r}.")
    _validate_data_options(cfg.data)
    for name in cfg.strategy:
        if name not in strategy_factories or strategy_factories.get(name).options is None:
            with_options = [n for n, f in strategy_factories.items() if f.options is not None]
            raise ConfigError(f"strategy.{name}: no strategy of that name takes options; those that do: "
                              f"{', '.join(with_options) or 'none'}.")
        strategy_options(cfg, name)                      # unknown keys and wrong types fail here
    if not (cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:")):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}.")
    for role in ("G", "D"):
        check_net_config(role, getattr(cfg, role))
    for name, oc in cfg.opt.items():
        check_opt_config(oc, f"opt.{name}")
    if cfg.metrics:
        from ..metrics import metric_names
        unknown = [m for m in cfg.metrics if m.partition("@")[0] not in metric_names()]  # "fid@classifier:clf.pt"
        if unknown:
            raise ConfigError(f"Unknown metric(s) {unknown}. Valid metrics: {', '.join(metric_names())}.")
        sampler_kinds.get(recipe_cls.sampler_kind).check_metrics(cfg.metrics)


def check_opt_config(oc: Any, where: str) -> None:
    """Ranges of one optimiser's hyper-parameters, checked before torch sees them (its ValueError names no key)."""
    optimizers.get(oc.name)
    if not oc.lr > 0:
        raise ConfigError(f"{where}.lr must be positive, got {oc.lr}.")
    betas = tuple(oc.betas)
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in betas):
        raise ConfigError(f"{where}.betas must be two numbers [beta1, beta2], got {list(betas)}.")
    for i, b in enumerate(betas):
        if not 0.0 <= b < 1.0:
            raise ConfigError(f"{where}.betas[{i}] must be in [0, 1), got {b} (Adam's moment decay rates).")
    if not oc.eps >= 0:
        raise ConfigError(f"{where}.eps must be >= 0, got {oc.eps}.")
    if not oc.weight_decay >= 0:
        raise ConfigError(f"{where}.weight_decay must be >= 0, got {oc.weight_decay}.")
    if not oc.momentum >= 0:
        raise ConfigError(f"{where}.momentum must be >= 0, got {oc.momentum}.")


def _validate_data_options(data: DataConfig) -> None:
    """``data.options`` keys must be options of a kind this data can be given as (of any registered kind when the
    data cannot be found yet: loading then says why), with the types that kind's dataclass declares."""
    if not data.options:
        return
    candidates = [data_kind_registry.get(k) for k in (reachable_kinds(data) or data_kind_registry.in_order())]
    with_options = [k for k in candidates if k.options]
    valid = sorted({f for k in with_options for f in field_names(k.options)})
    for key in data.options:
        if key not in valid:
            raise ConfigError(f"data option {key!r} does not apply to this data "
                              f"({' or '.join(k.name for k in candidates)}); its options: {', '.join(valid) or 'none'}.")
    for k in with_options:
        data_options_for(k.name, data)                   # wrong types fail here, naming the kind


def data_options_for(kind: str, data: DataConfig) -> Any:
    """The typed options of data kind ``kind`` from ``data.options`` (keys of other kinds are ignored)."""
    spec = data_kind_registry.get(kind)
    if spec.options is None:
        return None
    mine = {k: v for k, v in data.options.items() if k in field_names(spec.options)}
    return dataclass_from_dict(spec.options, mine, f"data options of kind {kind!r}")


def explain_first_step_failure(cfg: TrainConfig, error: BaseException) -> ConfigError:
    """The error of a run's first step (torch's shape or dtype complaint) as a ``ConfigError`` naming the values
    that decide what the networks compute: their architectural arguments, the data's shape options, the batch.

    Network arguments are checked against the signatures before training, and construction errors name them
    (``nets.make_net``); a value that builds but cannot run (``G.ngf=0``, a resolution an architecture
    cannot reach) shows up only in the first forward pass, which is still before any training happened.
    Set GANKIT_TRACEBACK=1 to see torch's traceback instead.
    """
    import os
    if os.environ.get("GANKIT_TRACEBACK"):
        raise error
    first = (str(error).strip().splitlines() or [""])[0][:300]
    if "out of memory" in first.lower():
        return ConfigError(f"The first training step ran out of memory ({first}). Lower --batch or the network "
                           f"widths, or split each batch with --set grad_accum=N.")
    kind = _first_kind(to_dict(cfg)) or "image"
    slot = slot_for(kind)
    nets = []
    for role in ("G", "D"):
        net: NetConfig = getattr(cfg, role)
        nets.append(f"{role} = {getattr(net, slot)} {getattr(net, slot + '_kwargs') or '(defaults)'}")
    data = {k: getattr(cfg.data, k) for k in ("resolution", "channels") if getattr(cfg.data, k)}
    return ConfigError(f"The first training step failed ({type(error).__name__}: {first}). The configured networks "
                       f"cannot run on this data: {'; '.join(nets)}; data {data or '(own shape)'}, batch_size "
                       f"{cfg.batch_size}. Check the G.* / D.* arguments (a width of 0, a resolution the "
                       f"architecture cannot make). Set GANKIT_TRACEBACK=1 for torch's traceback.")
