"""Networks: shared tests over every registered generator / discriminator, then focused tests of the classic
families (DCGAN, MLP): layouts against the PyTorch DCGAN example, the projection formula, spectral norm, inits.

Every registered class declares ``kind`` ("image" | "vector" | "translator" | "patch") and ``test_interface``
(small example interface arguments); see gankit/nets/layers.py. Kinds these tests do not know are skipped.
"""
from __future__ import annotations

import inspect
import math

import pytest
import torch
from torch import nn

from gankit.errors import ConfigError
from gankit.nets import discriminators, generators, init_weights, inits, make_net
from gankit.nets.dcgan import RESOLUTIONS
from gankit.nets.layers import CONDITIONINGS, DISCRIMINATOR_NORMS

INTERFACE = {"z_dim", "out_channels", "in_channels", "out_dim", "in_dim", "resolution", "length", "num_classes",
             "scale", "vocab_size", "seq_len"}                     # seq: sequences (gankit/nets/text.py)
KINDS = ("image", "vector", "translator", "patch")
N = 3


# Interface arguments for registered networks that do not (yet) declare ``test_interface`` themselves.
FALLBACK_INTERFACE = {
    "unet": {"in_channels": 3, "out_channels": 1, "resolution": 32},
    "resnet": {"in_channels": 3, "out_channels": 1, "resolution": 32},
    "patchgan": {"in_channels": 4, "resolution": 32},
}


def interface(cls) -> dict:
    iface = getattr(cls, "test_interface", None)
    if iface is None:
        name = next((n for reg in (generators, discriminators) for n, c in reg.items() if c is cls), None)
        iface = FALLBACK_INTERFACE.get(name)
    assert isinstance(iface, dict), \
        f"{cls.__name__} must declare a class attribute test_interface (small example interface arguments)"
    return iface


def build(cls, **overrides) -> nn.Module:
    kind = getattr(cls, "kind", None)
    assert kind is not None, f"{cls.__name__} must declare a class attribute kind, one of {KINDS}"
    if kind not in KINDS:
        pytest.skip(f"{cls.__name__}: kind {kind!r} has no shared test")
    torch.manual_seed(0)
    return cls(**{**interface(cls), **overrides})


def takes(cls, arg: str) -> bool:
    return arg in inspect.signature(cls.__init__).parameters


def g_input(net: nn.Module, cls, n: int) -> torch.Tensor:
    if cls.kind in ("image", "vector"):
        return torch.randn(n, net.z_dim)
    side = interface(cls).get("resolution", 32)
    return torch.rand(n, interface(cls)["in_channels"], side, side) * 2 - 1  # translator input in [-1, 1]


def d_input(cls, n: int) -> torch.Tensor:
    iface = interface(cls)
    if cls.kind == "vector":
        return torch.randn(n, iface["in_dim"])
    side = iface.get("resolution", 32)
    return torch.rand(n, iface["in_channels"], side, side) * 2 - 1


def check_g_output(out: torch.Tensor, cls, n: int) -> None:
    iface = interface(cls)
    if cls.kind == "vector":
        assert out.shape == (n, iface["out_dim"])
    else:
        side = iface.get("resolution", 32)
        assert out.shape == (n, iface["out_channels"], side, side)
        assert out.min() >= -1 and out.max() <= 1, "image generators end in tanh: output in [-1, 1]"
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def check_d_output(out: torch.Tensor, cls, n: int) -> None:
    if cls.kind == "patch":
        assert out.dim() == 4 and out.shape[:2] == (n, 1), f"patch D gives [N, 1, h, w], got {tuple(out.shape)}"
    else:
        assert out.shape == (n,), f"D gives [N] raw scores, got {tuple(out.shape)}"
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def check_grads(net: nn.Module) -> None:
    missing = [name for name, p in net.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reaches {missing}"
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


# ---- shared: every registered network ----------------------------------------------------------------------

@pytest.mark.parametrize("role,name", [("G", n) for n in generators.names()] + [("D", n) for n in discriminators.names()])
def test_constructor_args_are_typed_and_defaulted(role, name):
    """make_net / check_kwargs type-check user arguments against their defaults: every non-interface argument
    needs one (and an annotation); only interface arguments may lack a default."""
    cls = (generators if role == "G" else discriminators).get(name)
    for arg, p in inspect.signature(cls.__init__).parameters.items():
        if arg == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        assert p.annotation is not inspect.Parameter.empty, f"{name}.{arg} has no type annotation"
        if arg not in INTERFACE:
            assert p.default is not inspect.Parameter.empty and p.default is not None, f"{name}.{arg} needs a default"


@pytest.mark.parametrize("name", generators.names())
def test_generator_shared(name):
    cls = generators.get(name)
    G = build(cls)
    out = G(g_input(G, cls, N))
    check_g_output(out, cls, N)
    (out * torch.randn_like(out)).sum().backward()
    check_grads(G)
    G.eval()  # a single sample in eval mode (no batch statistics)
    with torch.no_grad():
        check_g_output(G(g_input(G, cls, 1)), cls, 1)


@pytest.mark.parametrize("name", discriminators.names())
def test_discriminator_shared(name):
    cls = discriminators.get(name)
    D = build(cls)
    x = d_input(cls, N)
    out = D(x)
    check_d_output(out, cls, N)
    (out * torch.randn_like(out)).sum().backward()
    check_grads(D)

    # Eval mode: batches of any size, each sample scored independently of the others.
    D.eval()
    with torch.no_grad():
        whole = D(x)
        for i in range(N):
            torch.testing.assert_close(D(x[i:i + 1]), whole[i:i + 1], rtol=1e-4, atol=1e-5)

    # Double backward, as a gradient penalty needs (Gulrajani et al. 2017, eq. 3).
    D.train()
    D.zero_grad()
    x_hat = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    penalty = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    penalty.backward()
    assert torch.isfinite(penalty) and grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters())


@pytest.mark.parametrize("name", generators.names())
def test_generator_conditional(name):
    cls = generators.get(name)
    if not takes(cls, "num_classes"):
        pytest.skip("unconditional network")
    G = build(cls, num_classes=4)
    assert G.num_classes == 4
    z = g_input(G, cls, 4)
    label = torch.tensor([0, 1, 2, 3])
    out = G(z, label)
    check_g_output(out, cls, 4)
    (out * torch.randn_like(out)).sum().backward()
    check_grads(G)  # includes the label embedding
    with torch.no_grad():
        assert not torch.allclose(G(z, label), G(z, (label + 1) % 4)), "the label must change the output"
    with pytest.raises(ConfigError, match="class-conditional"):
        G(z)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
@pytest.mark.parametrize("name", discriminators.names())
def test_discriminator_conditional(name, conditioning):
    cls = discriminators.get(name)
    if not takes(cls, "num_classes"):
        pytest.skip("unconditional network")
    if conditioning != "concat" and not takes(cls, "conditioning"):
        pytest.skip("no conditioning choice")
    kw = {"conditioning": conditioning} if takes(cls, "conditioning") else {}
    D = build(cls, num_classes=4, **kw)
    x, label = d_input(cls, 4), torch.tensor([0, 1, 2, 3])
    out = D(x, label)
    check_d_output(out, cls, 4)
    (out * torch.randn_like(out)).sum().backward()
    check_grads(D)
    D.eval()
    with torch.no_grad():
        assert not torch.allclose(D(x, label), D(x, (label + 1) % 4)), "the label must change the score"
    with pytest.raises(ConfigError, match="class-conditional"):
        D(x)


@pytest.mark.parametrize("scheme", inits.names())
@pytest.mark.parametrize("role,name", [("G", n) for n in generators.names()] + [("D", n) for n in discriminators.names()])
def test_every_init_scheme_builds_working_nets(role, name, scheme):
    cls = (generators if role == "G" else discriminators).get(name)
    net = init_weights(build(cls), scheme)
    with torch.no_grad():
        out = net(g_input(net, cls, 2)) if role == "G" else net(d_input(cls, 2))
    assert torch.isfinite(out).all()


# ---- DCGAN: resolutions, layout, the PyTorch example -------------------------------------------------------

@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_every_resolution_and_channels(resolution, channels):
    G = generators.get("dcgan")(z_dim=8, out_channels=channels, resolution=resolution, ngf=4)
    D = discriminators.get("dcgan")(in_channels=channels, resolution=resolution, ndf=4)
    img = G(torch.randn(2, 8))
    assert img.shape == (2, channels, resolution, resolution)
    assert D(img).shape == (2,)
    # 28 starts from 7x7 (two doublings), the rest from 4x4; widths halve as the side doubles, capped at 8x.
    start = 7 if resolution == 28 else 4
    doublings = round(math.log2(resolution / start))
    assert D.features(img).shape == (2, 4 * min(2 ** (doublings - 1), 8), start, start)
    first = G.main[0]
    assert first.kernel_size == (start, start) and first.out_channels == 4 * min(2 ** (doublings - 1), 8)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in G.modules()) == doublings + 1


@pytest.mark.parametrize("bad", [0, 16, 48, 256, 100])
def test_dcgan_invalid_resolution_names_valid_ones(bad):
    for build_net in (lambda: generators.get("dcgan")(8, 3, bad), lambda: discriminators.get("dcgan")(3, bad)):
        with pytest.raises(ConfigError, match="28, 32, 64, 128"):
            build_net()


def test_invalid_norm_and_conditioning_name_the_choices():
    with pytest.raises(ConfigError, match="batch, none"):
        generators.get("dcgan")(8, 3, 32, norm="spectral")
    with pytest.raises(ConfigError, match="batch, spectral, none, layer, instance"):
        discriminators.get("dcgan")(3, 32, norm="group")
    with pytest.raises(ConfigError, match="concat, projection"):
        discriminators.get("dcgan")(3, 32, conditioning="acgan")
    with pytest.raises(ConfigError, match="none, spectral, layer, batch"):
        discriminators.get("mlp")(2, norm="instance")
    with pytest.raises(ConfigError, match="batch, none"):
        generators.get("mlp")(2, 2, norm="layer")
    # Through make_net, as the recipe builds them: unknown / mistyped user arguments name the valid ones.
    iface = {"in_channels": 3, "resolution": 32}
    with pytest.raises(ConfigError, match="Valid choices"):
        make_net("D", "dcgan", {"norm": "bogus"}, iface, "D")
    with pytest.raises(ConfigError, match="ndf"):
        make_net("D", "dcgan", {"nfd": 32}, iface, "D")
    with pytest.raises(ConfigError, match="must be int"):
        make_net("D", "dcgan", {"ndf": "32"}, iface, "D")
    assert isinstance(make_net("D", "dcgan", {"ndf": 8, "norm": "layer"}, iface, "D"), nn.Module)


@pytest.mark.parametrize("norm", DISCRIMINATOR_NORMS)
def test_dcgan_discriminator_norms(norm):
    D = discriminators.get("dcgan")(3, 32, ndf=8, norm=norm)
    kinds = {type(m) for m in D.modules()}
    expect = {"batch": nn.BatchNorm2d, "layer": nn.GroupNorm, "instance": nn.InstanceNorm2d}.get(norm)
    for norm_cls in (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d):
        assert (norm_cls in kinds) == (norm_cls is expect)
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert all(hasattr(m, "parametrizations") == (norm == "spectral") for m in convs)
    # No biases next to batch norm (its shift replaces them, as in the reference code); biases otherwise.
    assert all((m.bias is None) == (norm == "batch") for m in convs)
    assert D(torch.randn(2, 3, 32, 32)).shape == (2,)


def _pytorch_example_nets(nz=100, ngf=64, ndf=64, nc=3):
    """The networks of pytorch/examples dcgan/main.py, written out layer by layer."""
    g = nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())
    d = nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())
    return g, d


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_dcgan_matches_pytorch_example_64x64():
    ref_g, ref_d = _pytorch_example_nets()
    G = generators.get("dcgan")(z_dim=100, out_channels=3, resolution=64, ngf=64)
    D = discriminators.get("dcgan")(in_channels=3, resolution=64, ndf=64)
    # Counted by hand from the example: G 4x4 kernels 16*(100*512 + 512*256 + 256*128 + 128*64 + 64*3) plus
    # BN 2*(512+256+128+64); D 16*(3*64 + 64*128 + 128*256 + 256*512 + 512) plus BN 2*(128+256+512).
    assert _count(ref_g) == 16 * (100 * 512 + 512 * 256 + 256 * 128 + 128 * 64 + 64 * 3) + 2 * 960 == 3_576_704
    assert _count(ref_d) == 16 * (3 * 64 + 64 * 128 + 128 * 256 + 256 * 512 + 512) + 2 * 896 == 2_765_568
    assert _count(G) == _count(ref_g) and _count(D) == _count(ref_d)
    # Same layers in the same order: copying the example's state into ours gives the same function.
    for ours, ref in ((G, ref_g), (D, ref_d)):
        torch.manual_seed(1)
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):  # non-trivial statistics, so eval mode tests them too
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
        ref_state = list(ref.state_dict().values())
        our_keys = list(ours.state_dict())
        assert [t.shape for t in ref_state] == [ours.state_dict()[k].shape for k in our_keys]
        ours.load_state_dict(dict(zip(our_keys, ref_state)))
        ours.eval(), ref.eval()
    z = torch.randn(2, 100)
    img = G(z)
    torch.testing.assert_close(img, ref_g(z[:, :, None, None]))
    torch.testing.assert_close(torch.sigmoid(D(img)), ref_d(img).view(2))  # the example's D ends in a sigmoid


# ---- conditioning: concat vs projection (Miyato & Koyama 2018, eq. 3) --------------------------------------

PROJECTION_NETS = {
    # name: (constructor arguments, input, pooling of phi(x) to [N, F])
    "dcgan": ({"in_channels": 3, "resolution": 32, "ndf": 8}, (4, 3, 32, 32), lambda f: f.sum(dim=(2, 3))),  # sum pool
    "mlp": ({"in_dim": 2, "hidden": 16}, (4, 2), lambda f: f),
    "mlp_image": ({"in_channels": 1, "resolution": 8, "hidden": 16}, (4, 1, 8, 8), lambda f: f),
}


def _part(D: nn.Module, name: str) -> nn.Module:
    return getattr(D, name) if hasattr(D, "head") else getattr(D.mlp, name)  # mlp_image wraps an mlp


@pytest.mark.parametrize("name", PROJECTION_NETS)
def test_projection_formula(name):
    kwargs, shape, pool = PROJECTION_NETS[name]
    torch.manual_seed(0)
    D = discriminators.get(name)(**kwargs, num_classes=5, conditioning="projection").eval()
    x, label = torch.randn(shape), torch.tensor([0, 3, 1, 4])
    embed, head = _part(D, "embed"), _part(D, "head")
    with torch.no_grad():
        embed.weight.normal_()                                     # non-zero, distinct class rows V_y
        full = D(x, label)
        feat = D.features(x, label)
        projection = (embed.weight[label] * pool(feat)).sum(dim=1)  # y^T V phi(x)
        psi = head(feat).reshape(-1)
        torch.testing.assert_close(full, psi + projection)         # eq. 3: f = y^T V phi(x) + psi(phi(x))
        head.weight.zero_()
        if head.bias is not None:
            head.bias.zero_()
        torch.testing.assert_close(D(x, label), projection)        # psi zeroed: only the projection remains
        assert projection.abs().min() > 0
        # phi(x) does not see the label under projection: only V_y does.
        torch.testing.assert_close(D.features(x, label), D.features(x, (label + 1) % 5))


def test_concat_conditioning_joins_the_label_to_the_input():
    D = discriminators.get("dcgan")(3, 32, num_classes=5, ndf=8, conditioning="concat")
    assert D.blocks[0].in_channels == 4 and D.label_map.weight.shape == (5, 32 * 32)  # one [R, R] map per class
    assert D.embed is None and discriminators.get("dcgan")(3, 32, ndf=8).blocks[0].in_channels == 3
    D.eval()
    x, label = torch.randn(2, 3, 32, 32), torch.tensor([1, 2])
    with torch.no_grad():
        assert not torch.allclose(D.features(x, label), D.features(x, (label + 1) % 5))
        # The extra channel is exactly the class's map: zeroing it makes the label irrelevant.
        D.label_map.weight.zero_()
        torch.testing.assert_close(D(x, label), D(x, (label + 1) % 5))
    m = discriminators.get("mlp")(2, num_classes=5, embed_dim=7, hidden=16)
    assert m.blocks[0].in_features == 2 + 7


def test_labels_checked_and_ignored_by_unconditional_nets():
    G = generators.get("dcgan")(8, 1, 28, ngf=4, num_classes=3)
    with pytest.raises(ConfigError, match=r"shape \[2\]"):
        G(torch.randn(2, 8), torch.tensor([[0], [1]]))
    G0, D0 = generators.get("dcgan")(8, 1, 28, ngf=4).eval(), discriminators.get("mlp")(2).eval()
    z, x = torch.randn(2, 8), torch.randn(2, 2)
    torch.testing.assert_close(G0(z, torch.tensor([0, 1])), G0(z))
    torch.testing.assert_close(D0(x, torch.tensor([0, 1])), D0(x))


# ---- spectral norm (Miyato et al. 2018) and initialisation -------------------------------------------------

def _sn_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if hasattr(m, "parametrizations")]


def _sigma_max(w: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2).item()


@pytest.mark.parametrize("name,kwargs,x", [
    ("dcgan", {"in_channels": 3, "resolution": 32, "ndf": 8}, torch.randn(4, 3, 32, 32)),
    ("mlp", {"in_dim": 2}, torch.randn(4, 2)),
])
def test_spectral_norm_largest_singular_value_is_one(name, kwargs, x):
    torch.manual_seed(0)
    D = discriminators.get(name)(**kwargs, num_classes=3, conditioning="projection", norm="spectral")
    layers = _sn_layers(D)
    n_linear = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in D.modules())
    assert len(layers) == n_linear + 1  # every conv / linear, and V of the projection
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) for m in D.modules())
    label = torch.tensor([0, 1, 2, 0])
    for _ in range(10):  # one power iteration per training-mode forward
        D(x, label)
    D.eval()
    with torch.no_grad():
        for m in layers:
            raw = _sigma_max(m.parametrizations.weight.original)
            assert abs(raw - 1) > 0.1, "the raw weight should not already be normalised"
            assert _sigma_max(m.weight) == pytest.approx(1.0, abs=0.03)


def _big_conv(D: nn.Module) -> nn.Module:
    return max((m for m in D.modules() if isinstance(m, nn.Conv2d)), key=lambda m: m.weight.numel())


def _raw(m: nn.Module) -> torch.Tensor:
    return m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight


@pytest.mark.parametrize("norm", ["batch", "spectral"])
def test_init_schemes_statistics(norm):
    """On the 256 -> 512 4x4 conv of the 64x64 DCGAN D (2M weights): fan_in = 4096, fan_out = 8192."""
    torch.manual_seed(0)
    D = discriminators.get("dcgan")(3, 64, ndf=64, norm=norm)
    conv = _big_conv(D)
    fan_in, fan_out = 256 * 16, 512 * 16
    assert tuple(_raw(conv).shape) == (512, 256, 4, 4)

    init_weights(D, "normal02")  # Radford et al. 2016, sec. 4: N(0, 0.02)
    w = _raw(conv)
    assert w.std().item() == pytest.approx(0.02, rel=0.01) and abs(w.mean().item()) < 2e-4
    if norm == "batch":
        bn = torch.cat([m.weight for m in D.modules() if isinstance(m, nn.BatchNorm2d)])
        assert bn.mean().item() == pytest.approx(1.0, abs=0.005) and bn.std().item() == pytest.approx(0.02, rel=0.15)
    else:
        biases = torch.cat([m.bias for m in D.modules() if isinstance(m, nn.Conv2d)])
        assert (biases == 0).all()

    init_weights(D, "he")  # He et al. 2015, leaky ReLU a = 0.2: std = sqrt(2 / (1 + a^2)) / sqrt(fan_in)
    assert _raw(conv).std().item() == pytest.approx(math.sqrt(2 / 1.04) / math.sqrt(fan_in), rel=0.01)

    init_weights(D, "xavier")  # Glorot & Bengio 2010: U(+-b), b = sqrt(6 / (fan_in + fan_out)), std = b / sqrt(3)
    w, bound = _raw(conv), math.sqrt(6 / (fan_in + fan_out))
    assert w.abs().max().item() <= bound and w.abs().max().item() > 0.99 * bound
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.01)

    init_weights(D, "orthogonal")  # Saxe et al. 2014: the [512, 4096] weight matrix has orthonormal rows
    mat = _raw(conv).reshape(512, -1)
    torch.testing.assert_close(mat @ mat.T, torch.eye(512), atol=1e-4, rtol=0)


def test_init_then_spectral_norm_is_normalised_before_training():
    """After init_weights, the spectrally normalised weight has sigma ~ 1 at once (not only after many forwards):
    the power iteration's vectors must be refreshed for the new raw weight, or the first steps see weights
    scaled by the stale estimate (up to ~100x under normal02)."""
    torch.manual_seed(0)
    D = discriminators.get("mlp")(2, num_classes=3, conditioning="projection", norm="spectral")
    init_weights(D, "normal02")
    D.eval()
    with torch.no_grad():
        for m in _sn_layers(D):
            assert m.parametrizations.weight.original.std().item() == pytest.approx(0.02, rel=0.2)
            assert _sigma_max(m.weight) == pytest.approx(1.0, abs=0.05)


# ---- MLPs ---------------------------------------------------------------------------------------------------

def test_mlp_shapes_and_layout():
    G = generators.get("mlp")(z_dim=2, out_dim=5)
    assert sum(isinstance(m, nn.Linear) for m in G.modules()) == 3 + 1  # default: 3 hidden layers, then output
    # Linear, batch norm, ReLU per hidden layer; a linear output (vectors are not confined to [-1, 1]).
    assert [type(m) for m in G.main][:3] == [nn.Linear, nn.BatchNorm1d, nn.ReLU] and isinstance(G.main[-1], nn.Linear)
    assert G.main[0].bias is None and G.main[-1].bias is not None  # batch norm's shift replaces the hidden biases
    assert G(torch.randn(7, 2)).shape == (7, 5)
    D = discriminators.get("mlp")(in_dim=5, depth=2, hidden=32, dropout=0.5)
    assert any(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2 for m in D.modules())
    assert D(torch.randn(7, 5)).shape == (7,)
    Gi = generators.get("mlp_image")(z_dim=8, out_channels=3, resolution=12, hidden=32)
    img = Gi(torch.randn(2, 8))
    assert img.shape == (2, 3, 12, 12) and img.abs().max() <= 1
    assert discriminators.get("mlp_image")(3, 12, hidden=32)(img).shape == (2,)
