"""The standard FID Inception-v3 features, from torch-fidelity's ``FeatureExtractorInceptionV3``.

That module is the TF 2015-12-05 graph as ported for FID (patched pooling, 1008-class head): it takes uint8
NCHW images, resizes them to 299 with TF1-exact bilinear interpolation, normalises with (x-128)/128, and gives
'2048' (pool3: FID, KID, PR, DC) and 'logits_unbiased' (pool3 @ W without bias: IS). We use it as is rather
than porting it again (DESIGN.md sec. 5).

The weights file ``weights-inception-2015-12-05-6726825d.pth`` is looked for, in order, at
    1. an explicit path (``--inception-weights PATH``),
    2. $GANKIT_INCEPTION_WEIGHTS,
    3. the torch hub cache, ``torch.hub.get_dir()/checkpoints/`` (where torch-fidelity itself downloads it),
and downloaded into 3 from torch-fidelity's release URL only when none exists and downloading is allowed
(not with ``download=False``, ``--no-download`` or $GANKIT_NO_DOWNLOAD set).
Its SHA-256 must start with 6726825d (the torch.hub "name-<hash prefix>.ext" convention); pass
``verify=False`` (or set GANKIT_INCEPTION_VERIFY=0) to use other weights, e.g. random ones in tests. Whether the
hash matched is part of every result's protocol: numbers from unverified weights are not comparable.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

import torch
from torch import nn

from ..errors import CheckpointError, DataError
from .base import Extractor, exact_float32, extractors, resolve_device, sha256_file

WEIGHTS_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
               "weights-inception-2015-12-05-6726825d.pth")
SHA256_PREFIX = "6726825d"
ENV_WEIGHTS = "GANKIT_INCEPTION_WEIGHTS"
ENV_VERIFY = "GANKIT_INCEPTION_VERIFY"
FEATURE_LAYER = "2048"                 # pool3
LOGITS_LAYER = "logits_unbiased"       # pool3 @ fc.weight.T, 1008 classes, no bias


class MissingWeightsError(DataError):
    """The Inception weights file is not on this machine and could not be downloaded."""


def hub_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILENAME


def find_inception_weights(path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Locate (or download) the FID Inception weights; see the module docstring for the search order."""
    for given, where in ((path, "--inception-weights"), (os.environ.get(ENV_WEIGHTS), f"${ENV_WEIGHTS}")):
        if given:
            p = Path(given).expanduser()
            if not p.is_file():
                raise MissingWeightsError(f"Inception weights file {str(p)!r} (from {where}) does not exist.")
            return p
    cached = hub_weights_path()
    if cached.is_file():
        return cached
    if download and not os.environ.get("GANKIT_NO_DOWNLOAD"):
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(WEIGHTS_URL, str(cached), hash_prefix=None, progress=True)
            return cached
        except Exception as e:  # offline, proxy, permission: all mean "not available here"
            reason = f"Downloading it from {WEIGHTS_URL} failed ({type(e).__name__}: {e})."
    else:
        reason = "Downloading is switched off (--no-download or $GANKIT_NO_DOWNLOAD)."
    raise MissingWeightsError(
        f"The FID Inception weights file {WEIGHTS_FILENAME} was not found. {reason} Put the file at "
        f"{cached} (the torch hub cache, shared with torch-fidelity), or anywhere and pass "
        f"--inception-weights PATH or set {ENV_WEIGHTS}=PATH. It is available from {WEIGHTS_URL} "
        f"(SHA-256 starts with {SHA256_PREFIX}). Offline, `--extractor classifier:clf.pt` gives domain metrics.")


def _verify_default() -> bool:
    return os.environ.get(ENV_VERIFY, "1").strip().lower() not in ("0", "false", "no", "off")


class InceptionExtractor(Extractor):
    """uint8 [N, C, H, W] (C = 1 or 3, any size) -> {'features': [N, 2048], 'logits': [N, 1008]} float32."""

    name = "inception"
    outputs = ("features", "logits")

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device | None = None,
                 verify: bool | None = None, download: bool = True, batch_size: int = 64, fold_bn: bool = True,
                 channels_last: bool | None = None, cudnn_benchmark: bool = True):
        import torch_fidelity

        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.weights_path = find_inception_weights(weights, download)
        self.weights_sha256 = sha256_file(self.weights_path)
        self.weights_verified = self.weights_sha256.startswith(SHA256_PREFIX)
        verify = _verify_default() if verify is None else verify
        if verify and not self.weights_verified:
            raise CheckpointError(
                f"{self.weights_path} is not the FID Inception weights file: its SHA-256 starts with "
                f"{self.weights_sha256[:8]}, expected {SHA256_PREFIX}. Numbers made with it would not be "
                f"comparable with published ones. Get {WEIGHTS_URL}, or pass verify=False / set {ENV_VERIFY}=0 "
                f"to use these weights anyway (the protocol records weights_verified=false).")
        # Weights are data: read with weights_only=True whatever their hash (the 6726825d in the name says which
        # weights they are, for comparability; it is no security check: anyone can name a file so), and handed
        # to torch-fidelity's module as a state dict, never through its own torch.load(weights_only=False).
        state = load_weights_file(self.weights_path, "Inception weights")
        self.net = inception_module(state, self.weights_path)
        self.net.to(self.device)
        # Inference-only speed-ups that leave the function unchanged up to float32 rounding (tested; measured in
        # docs/benchmarks.md): batch norms folded into the convolutions; NHWC activations on the CPU, where oneDNN
        # runs them 1.6x faster (on an H200 cuDNN's float32 NHWC kernels were 16% slower, so not there); cuDNN's
        # autotuner on the GPU, which picks the fastest float32 algorithm for the batch shape.
        self.bn_folded = fold_batch_norms(self.net) if fold_bn else 0
        self.channels_last = self.device.type == "cpu" if channels_last is None else channels_last
        self.cudnn_benchmark = cudnn_benchmark
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self._tf_version = torch_fidelity.__version__

    @torch.no_grad()
    @exact_float32()
    def __call__(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        if img.dtype != torch.uint8 or img.ndim != 4 or img.shape[1] not in (1, 3):
            raise DataError(f"The Inception extractor takes uint8 images [N, 1 or 3, H, W], got {img.dtype} "
                            f"{tuple(img.shape)}.")
        if img.shape[1] == 1:
            img = img.repeat(1, 3, 1, 1)   # grayscale -> RGB, as NVIDIA's metric code does
        feats, logits = [], []
        saved_benchmark = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = self.cudnn_benchmark or saved_benchmark
        try:
            for chunk in img.split(self.batch_size):
                f, lg = self.net(chunk.to(self.device, non_blocking=True))
                feats.append(f)
                logits.append(lg)
        finally:
            torch.backends.cudnn.benchmark = saved_benchmark
        return {"features": torch.cat(feats), "logits": torch.cat(logits)}

    def identity(self) -> dict[str, Any]:
        return {"extractor": "inception", "weights_sha256": self.weights_sha256,
                "weights_verified": self.weights_verified, "resize": "TF1 bilinear to 299x299",
                "normalisation": "(x-128)/128"}

    def protocol(self) -> dict[str, Any]:
        return {**self.identity(),
                "implementation": f"torch-fidelity {self._tf_version} FeatureExtractorInceptionV3",
                "weights_file": str(self.weights_path),
                "layers": {"features": f"{FEATURE_LAYER} (pool3)", "logits": f"{LOGITS_LAYER} (1008, no bias)"},
                "input": "uint8 RGB; grayscale repeated to 3 channels", "device": str(self.device),
                "arithmetic": "IEEE float32 (TF32 off)", "batch_norms_folded": self.bn_folded,
                "channels_last": self.channels_last, "cudnn_benchmark": self.cudnn_benchmark}


def load_weights_file(path: str | os.PathLike, what: str = "weights") -> dict[str, torch.Tensor]:
    """A feature network's weights file as a state dict of tensors, read with ``weights_only=True``.

    For every feature network gankit loads (Inception here; any future one): a file holding pickled code is
    refused, whatever its name or hash; so are a truncated file and one that is not a dict of tensors.
    """
    import pickle

    from ..io import damage_of
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), "")
        raise CheckpointError(f"Refusing to load {what} {str(path)!r}: the file holds pickled Python objects (code), "
                              f"not only tensors{f' ({found[:160]})' if found else ''}. Weights are loaded as data "
                              f"only, whatever the file's name or hash.") from None
    except Exception as e:
        raise CheckpointError(f"Cannot read {what} {str(path)!r}: it {damage_of(path) or 'is not a torch file'} "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}).") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{what} {str(path)!r} is not a state dict (a mapping of names to tensors).")
    return state


def inception_module(state: dict[str, torch.Tensor], path: str | os.PathLike) -> nn.Module:
    """torch-fidelity's ``FeatureExtractorInceptionV3`` with ``state`` loaded (strictly: every key, every shape)."""
    from torch_fidelity import feature_extractor_inceptionv3 as tf_inception
    cls = tf_inception.FeatureExtractorInceptionV3
    # Its constructor fetches a state dict (from a URL when no path is given) and loads it strictly: give it ours.
    with mock.patch.object(tf_inception, "load_state_dict_from_url", lambda *a, **k: state):
        try:
            return cls("inception-v3-compat", [FEATURE_LAYER, LOGITS_LAYER], feature_extractor_weights_path=None)
        except RuntimeError as e:
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()][1:3]
            raise CheckpointError(f"{str(path)!r} does not hold the Inception-v3 weights' layout (472 tensors of "
                                  f"torch-fidelity's FeatureExtractorInceptionV3): {' '.join(lines)[:400]}") from None


def fold_batch_norms(net: nn.Module) -> int:
    """Fold the eval-mode BatchNorm of each of torch-fidelity's BasicConv2d blocks into its convolution.

    conv(x; w) -> BN(gamma, beta, mean, var, eps) equals conv(x; w * s) + (beta - mean * s) with
    s = gamma / sqrt(var + eps) per output channel (Ioffe & Szegedy 2015, eq. of the inference-mode transform).
    Computed in float64 and stored in float32, so the features move by float32 rounding only. Saves one kernel
    and one read and write of every activation per block (94 blocks). Returns how many were folded.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d
    folded = 0
    for block in net.modules():
        if isinstance(block, BasicConv2d) and isinstance(block.bn, nn.BatchNorm2d) and block.conv.bias is None:
            bn, conv = block.bn, block.conv
            scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)       # [C_out]
            conv.weight.data = (conv.weight.double() * scale[:, None, None, None]).to(conv.weight.dtype)
            conv.bias = nn.Parameter((bn.bias.double() - bn.running_mean.double() * scale).to(conv.weight.dtype),
                                     requires_grad=False)
            block.bn = nn.Identity()
            folded += 1
    return folded


@extractors.register("inception")
def _make_inception(arg: str | None = None, *, device=None, batch_size: int = 64, inception_weights=None,
                    verify_weights: bool | None = None, download: bool = True, **_: Any) -> InceptionExtractor:
    return InceptionExtractor(weights=arg or inception_weights, device=device, verify=verify_weights,
                              download=download, batch_size=batch_size)


# ---- random weights in the real file's layout (tests and offline benchmarks only) ----------------------------

@contextmanager
def _unloaded_inception() -> Iterator[Any]:
    """torch-fidelity's module with its weights left at PyTorch's initialisation (no file, no download)."""
    from torch_fidelity import feature_extractor_inceptionv3 as tf_inception
    cls = tf_inception.FeatureExtractorInceptionV3
    with mock.patch.object(tf_inception, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(cls, "load_state_dict", lambda self, state_dict, *a, **k: None):
        yield cls("inception-v3-compat", [FEATURE_LAYER])


def write_random_inception_weights(path: str | os.PathLike, seed: int = 0) -> Path:
    """Save random weights with the keys and shapes of the real file (472 tensors, fc 1008 x 2048).

    The layout is read from torch-fidelity's module, so it cannot drift from what the real file must hold.
    Convolutions get He-normal weights and batch norms identity statistics so that activations neither die
    nor explode through the 94 layers. The features are meaningless: only for tests and speed benchmarks.
    """
    with _unloaded_inception() as net:
        state = net.state_dict()
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, t in state.items():
        if key.endswith("conv.weight"):
            fan_in = t[0].numel()
            out[key] = torch.randn(t.shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif key.endswith("bn.weight"):
            out[key] = torch.ones_like(t)
        elif key.endswith("bn.bias"):
            out[key] = 0.1 * torch.randn(t.shape, generator=gen)
        elif key.endswith("running_mean"):
            out[key] = torch.zeros_like(t)
        elif key.endswith("running_var"):
            out[key] = torch.ones_like(t)
        elif key == "fc.weight":
            out[key] = torch.randn(t.shape, generator=gen) * (1.0 / t.shape[1]) ** 0.5 * 10
        elif key == "fc.bias":
            out[key] = 0.1 * torch.randn(t.shape, generator=gen)
        # num_batches_tracked is left out: the converted TF file does not hold it (472 tensors), and
        # BatchNorm fills it in when loading.
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return path
