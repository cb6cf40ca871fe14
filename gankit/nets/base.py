"""Registries of networks and initialisations, and building a network from a config (see ``__init__``)."""
from __future__ import annotations

import inspect
from typing import Any, Callable

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry

# Two namespaces, so that G.image = "dcgan" and D.image = "dcgan" name the two halves of one family.
generators: Registry[type[nn.Module]] = Registry("generator network")          # also translators (U-Net, ResNet)
discriminators: Registry[type[nn.Module]] = Registry("discriminator network")  # also patch discriminators
networks = {"G": generators, "D": discriminators}
inits: Registry = Registry("initialisation")


def check_kwargs(fn: Any, kwargs: dict, where: str) -> None:
    """Fail loudly on keys ``fn`` does not take or values of the wrong type, naming the valid keys."""
    sig = inspect.signature(fn)
    params = {n: p for n, p in sig.parameters.items() if n != "self" and p.kind != p.VAR_KEYWORD}
    for key, value in kwargs.items():
        if key not in params:
            raise ConfigError(f"{where}: unknown argument {key!r}. Valid arguments: {', '.join(sorted(params))}.")
        default = params[key].default
        if default is not inspect.Parameter.empty and default is not None and value is not None:
            expected = type(default)
            ok = isinstance(value, expected) or (expected is float and isinstance(value, int) and not isinstance(value, bool))
            if expected is tuple and isinstance(value, list):
                ok = True
            if isinstance(value, bool) and expected is not bool:
                ok = False
            if not ok:
                raise ConfigError(f"{where}: argument {key!r} must be {expected.__name__}, got {value!r}.")


def make_net(role: str, arch: str, user_kwargs: dict, interface: dict, where: str) -> nn.Module:
    """Build network ``arch`` of ``role`` ("G" or "D") from user (architectural) and interface (data) arguments."""
    cls = networks[role].get(arch)
    check_kwargs(cls.__init__, user_kwargs, f"{where} ({arch})")
    clash = set(user_kwargs) & set(interface)
    if clash:
        raise ConfigError(f"{where} ({arch}): {sorted(clash)} come from the data and cannot be set by hand.")
    check_kwargs(cls.__init__, interface, f"{where} ({arch}) interface")
    try:
        return cls(**interface, **user_kwargs)
    except (RuntimeError, ValueError, TypeError, ZeroDivisionError, AssertionError, IndexError) as e:
        # A value out of range (ngf=-4, a resolution the architecture cannot make): name the arguments, not
        # torch's tensor shapes.
        given = ", ".join(f"{k}={v!r}" for k, v in user_kwargs.items()) or "its default arguments"
        raise ConfigError(f"{where} ({arch}): cannot build the network with {given} for this data "
                          f"({', '.join(f'{k}={v!r}' for k, v in interface.items())}): "
                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e


def init_weights(net: nn.Module, scheme: str) -> nn.Module:
    """Apply a registered initialisation to every conv / linear / embedding (and norm affine) weight."""
    if scheme == "default":
        return net
    fn = inits.get(scheme)
    for m in net.modules():
        fn(m)
        _refresh_spectral_norm(m)
    return net


def _refresh_spectral_norm(m: nn.Module) -> None:
    """Re-run spectral norm's power iterations: its u, v vectors belonged to the weight before re-initialisation
    (without this the first steps see effective singular values of 8 to 170 instead of 1)."""
    from torch.nn.utils import parametrize
    if parametrize.is_parametrized(m, "weight"):
        for p in m.parametrizations.weight:
            if hasattr(p, "_power_method"):
                with torch.no_grad():
                    p._power_method(p._reshape_weight_to_matrix(m.parametrizations.weight.original), 15)


def _weight(m: nn.Module) -> torch.Tensor | None:
    # Spectral norm (torch.nn.utils.parametrizations) keeps the raw weight under parametrizations.weight.original.
    if hasattr(m, "parametrizations") and hasattr(m.parametrizations, "weight"):
        return m.parametrizations.weight.original
    return getattr(m, "weight", None) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)) else None


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)


@inits.register("normal02")
def _init_normal02(m: nn.Module) -> None:
    """DCGAN (Radford et al. 2016, sec. 4): weights ~ N(0, 0.02); norm scales ~ N(1, 0.02), biases 0."""
    w = _weight(m)
    if w is not None:
        nn.init.normal_(w, 0.0, 0.02)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, _NORMS) and getattr(m, "weight", None) is not None:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


@inits.register("he")
def _init_he(m: nn.Module) -> None:
    """He et al. 2015: N(0, 2/fan_in) for ReLU-family activations."""
    w = _weight(m)
    if w is not None and w.dim() > 1:
        nn.init.kaiming_normal_(w, a=0.2, nonlinearity="leaky_relu")
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)


@inits.register("xavier")
def _init_xavier(m: nn.Module) -> None:
    """Glorot & Bengio 2010: U(+-sqrt(6 / (fan_in + fan_out)))."""
    w = _weight(m)
    if w is not None and w.dim() > 1:
        nn.init.xavier_uniform_(w)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)


@inits.register("orthogonal")
def _init_orthogonal(m: nn.Module) -> None:
    """Saxe et al. 2014 orthogonal init, as used by BigGAN."""
    w = _weight(m)
    if w is not None and w.dim() > 1:
        nn.init.orthogonal_(w)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)




def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper, or inside a strategy's wrapper that marks itself
    with ``wrapped_network`` (the attribute name of the network it holds: Opacus' GradSampleModule keeps it in
    ``_module``), for state dicts, EMA copies, sampling, growing; other modules as they are. Here, below recipes
    and engine, so both use the one definition."""
    while True:
        if isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        elif isinstance(getattr(module, "wrapped_network", None), str):
            module = getattr(module, module.wrapped_network)
        else:
            return module


# The networks a NetConfig names: one for image-like data (images, pairs), one for vectors (toys, tables).
SLOTS = ("image", "vector")


def slot_for(data_kind: str) -> str:
    """Which network of a ``NetConfig`` a kind of data uses: "vector" for vectors, "image" for images and pairs."""
    return "vector" if data_kind == "vector" else "image"


def _args(role: str, arch: str) -> list[str]:
    return [p for p in inspect.signature(networks[role].get(arch).__init__).parameters if p != "self"]


def kwargs_slot(net: dict, role: str, arg: str, data_kind: Callable[[], str | None]) -> str:
    """Which ``*_kwargs`` of NetConfig ``net`` (a dict) a ``G.arg`` override belongs to: the network that takes
    it; when both do, the one this data uses (``data_kind()`` is only asked then: it may look at the data)."""
    reg = networks[role]
    named = [s for s in SLOTS if net.get(s) and net[s] in reg]
    takes = [s for s in named if arg in _args(role, net[s])]
    if len(takes) > 1 and (kind := data_kind()):
        takes = [slot_for(kind)]
    if not takes:
        raise ConfigError(f"Unknown network argument {role}.{arg}. {role}'s networks take: "
                          + "; ".join(f"{net[s]} ({s}): {', '.join(sorted(_args(role, net[s])))}" for s in named)
                          + ".")
    return takes[0] + "_kwargs"


def check_net_config(role: str, net: Any) -> None:
    """A NetConfig's initialisation and every named network's constructor arguments, against the registries."""
    if net.init != "default":
        inits.get(net.init)
    for slot in SLOTS:
        arch = getattr(net, slot)
        if arch:
            check_kwargs(networks[role].get(arch).__init__, getattr(net, f"{slot}_kwargs"), f"{role} ({arch})")


def build_net(role: str, net_cfg, data_kind: str, interface: dict, where: str | None = None) -> nn.Module:
    """The network a ``NetConfig`` names for this kind of data ("image" or "vector"), initialised as configured.

    Paired / unpaired data use the image network. ``interface`` holds the data-derived constructor arguments.
    """
    slot = slot_for(data_kind)
    arch = getattr(net_cfg, slot)
    where = where or role
    if not arch:
        raise ConfigError(f"{where}: this configuration has no network for {slot} data "
                          f"(set {role}.{slot} to one of: {', '.join(networks[role].names())}).")
    net = make_net(role, arch, dict(getattr(net_cfg, f"{slot}_kwargs")), interface, where)
    return init_weights(net, net_cfg.init)
