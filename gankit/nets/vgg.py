"""VGG-19 feature extractor for content / perceptual losses (Simonyan & Zisserman 2015, configuration E),
in torchvision's layout, loaded from a weights file given by path (nothing is downloaded).

    vgg = VGG19Features.from_file("vgg19-dcbb9e9d.pth", layer="relu5_4")   # torchvision's ImageNet weights
    feats = vgg(images)          # images [N, 1 or 3, H, W] in [-1, 1] -> [N, 512, H/16, W/16]

``features.<i>.weight / bias`` keys (a full ``torchvision.models.vgg19().state_dict()``, whose classifier keys are
ignored) or the same keys without the ``features.`` prefix (``vgg19().features.state_dict()``), as a ``.pth``
(read with ``weights_only=True``) or ``.safetensors`` file. Layer names follow the papers: ``conv5_4`` is the
16th convolution before its ReLU (ESRGAN's "before activation", Wang et al. 2018 sec. 3.3), ``relu5_4`` after it
(SRGAN's phi_5,4, Ledig et al. 2017 sec. 2.2.1). Inputs are mapped from [-1, 1] to ImageNet normalisation;
gray images are repeated to 3 channels.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError

# torchvision.models.vgg cfgs["E"]: channels, "M" = 2x2 max pool.
VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_indices() -> dict[str, int]:
    """'conv1_1' -> 0, 'relu1_1' -> 1, ..., 'pool1' -> 4, ... as indices into torchvision's ``vgg19().features``."""
    names, i, block, conv = {}, 0, 1, 1
    for v in VGG19_CFG:
        if v == "M":
            names[f"pool{block}"] = i
            i, block, conv = i + 1, block + 1, 1
        else:
            names[f"conv{block}_{conv}"], names[f"relu{block}_{conv}"] = i, i + 1
            i, conv = i + 2, conv + 1
    return names


LAYERS = layer_indices()


class VGG19Features(nn.Module):
    """torchvision's ``vgg19().features`` up to and including ``layer``, frozen, in eval mode."""

    def __init__(self, layer: str = "relu5_4"):
        super().__init__()
        if layer not in LAYERS:
            raise ConfigError(f"Unknown VGG-19 layer {layer!r}. Valid layers: {', '.join(LAYERS)}.")
        self.layer = layer
        modules: list[nn.Module] = []
        c_in = 3
        for v in VGG19_CFG:
            if v == "M":
                modules.append(nn.MaxPool2d(2, 2))
            else:
                modules += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU(inplace=False)]
                c_in = v
        self.features = nn.Sequential(*modules[:LAYERS[layer] + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "VGG19Features":
        return super().train(False)                  # always eval: a fixed feature extractor

    @classmethod
    def from_file(cls, path: str | Path, layer: str = "relu5_4") -> "VGG19Features":
        net = cls(layer)
        net.load_weights(path)
        return net

    def load_weights(self, path: str | Path) -> None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(f"VGG-19 weights file {str(path)!r} does not exist. Give torchvision's ImageNet "
                              "weights (vgg19-dcbb9e9d.pth) by path; gankit downloads nothing.")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if any(k.startswith("features.") for k in state):
            state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        mine = self.features.state_dict()
        missing = [k for k in mine if k not in state]
        wrong = [k for k in mine if k in state and tuple(state[k].shape) != tuple(mine[k].shape)]
        if missing or wrong:
            raise ConfigError(f"{str(path)!r} is not a VGG-19 weights file in torchvision's layout: "
                              f"{'missing ' + ', '.join(missing[:3]) if missing else ''}"
                              f"{' shapes differ for ' + ', '.join(wrong[:3]) if wrong else ''} (expected keys "
                              "features.0.weight ... features.34.bias).")
        self.features.load_state_dict({k: state[k].float() for k in mine})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, 1 | 3, H, W] in [-1, 1] -> features [N, C_l, H_l, W_l] of ``layer``."""
        x = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        x = ((x + 1) / 2 - self.mean) / self.std
        return self.features(x)
