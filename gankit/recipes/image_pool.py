"""History of generated images (Shrivastava et al. 2017, sec. 2.3; used by CycleGAN, Zhu et al. 2017 sec. 4).

The discriminator is updated with generated images drawn partly from a buffer of earlier generators' outputs,
which damps the oscillation of an adversary that only ever sees the newest generator. Rule per image, as in the
authors' code (junyanz/pytorch-CycleGAN-and-pix2pix ``ImagePool.query``):

- while the pool holds fewer than ``size`` images: store the new image and return it;
- otherwise, with probability 0.5 return a uniformly chosen stored image and put the new one in its place,
  else return the new image (the pool is unchanged).

The pool is objective state, so it is saved with the checkpoint: ``get_extra_state`` returns tensors only (the
stored images, their count and the state of the pool's own ``torch.Generator``), which ``torch.load(...,
weights_only=True)`` reads and which makes the pool's choices after a resume the ones an uninterrupted run makes.
"""
from __future__ import annotations

import torch
from torch import nn


class ImagePool(nn.Module):
    def __init__(self, size: int = 50, seed: int = 0):
        super().__init__()
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.generator = torch.Generator().manual_seed(seed)  # CPU generator: same draws on any device
        self.images: torch.Tensor | None = None              # [size, C, H, W], allocated on first use
        self.count = 0                                        # images stored so far (<= size)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] newest generated images -> [N, C, H, W] images to show the discriminator."""
        if self.size == 0:
            return images
        images = images.detach()
        if self.images is None:
            self.images = images.new_zeros((self.size, *images.shape[1:]))
        self.images = self.images.to(images.device)
        out = []
        for img in images:                                   # [C, H, W]
            if self.count < self.size:
                self.images[self.count] = img
                self.count += 1
                out.append(img)
            elif torch.rand((), generator=self.generator).item() < 0.5:
                idx = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[idx].clone())
                self.images[idx] = img
            else:
                out.append(img)
        return torch.stack(out)

    # ---- checkpoint state (tensors only, for torch.load(weights_only=True)) -------------------------------------
    def get_extra_state(self) -> dict[str, torch.Tensor]:
        stored = self.images[: self.count] if self.images is not None else torch.zeros(0)
        return {"images": stored.detach().cpu().clone(), "count": torch.tensor(self.count),
                "rng": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.count = int(state["count"])
        if self.count > self.size:
            raise ValueError(f"checkpoint pool holds {self.count} images, more than this pool's size {self.size}")
        self.generator.set_state(state["rng"].cpu())
        stored = state["images"]
        if self.count == 0:
            self.images = None
        else:
            self.images = stored.new_zeros((self.size, *stored.shape[1:]))
            self.images[: self.count] = stored
