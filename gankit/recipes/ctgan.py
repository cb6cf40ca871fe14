"""CTGAN (Xu et al. 2019, "Modeling Tabular Data using Conditional GAN"), written here (the reference code is
BUSL-licensed and not a dependency).

What the paper combines, and where it is:
- mode-specific normalisation of numeric columns, one-hot categories (gankit.data.tables, fitted at load time);
- the conditional vector and training-by-sampling (the table dataset's ``draw``; ``CondVector`` in tabular.py),
  the generator's condition loss (cross-entropy of the conditioned column, sec. 4.3);
- Gumbel-softmax outputs (tau 0.2) for modes and categories, tanh for alphas (``activate``);
- PacGAN packing, pac = 10 (Lin et al. 2018): D scores packs of pac rows (with their conditional vectors);
- WGAN-GP (Gulrajani et al. 2017): loss "wasserstein", gradient penalty weight 10 on packed interpolates;
- Adam lr 2e-4, betas (0.5, 0.9), weight decay 1e-6, batch 500 (the preset).

Under DP-SGD (engine/privacy.py calls ``enable_per_sample``): pac must be 1 and no gradient penalty (each term
of D's loss must depend on one real row at most; a penalty at real/fake interpolates needs the gradient of a
gradient, which per-sample gradient hooks do not follow, Opacus issue #31). The ctgan-dp preset runs the
non-saturating loss (Goodfellow et al. 2014; the loss of DP-GAN, Xie et al. 2018, and of Opacus' DCGAN example),
whose per-row gradients are bounded by the clipping alone. D then scores real and fake rows in one forward,
its loss is a plain mean over those rows, real rows carry conditional vectors read off themselves (the batch is
Poisson-sampled, not drawn by category), and fake rows draw theirs from the category frequencies.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data.base import DataInfo
from ..errors import ConfigError
from ..losses import adversarial_losses, gradient_penalty
from ..nets import build_net
from .base import Recipe, StepContext, recipes
from .tabular import CondVector, RowSampler, TablePreview, activate


@dataclass
class CTGANOptions:
    z_dim: int = 128              # noise size (CTGAN: embedding_dim 128); G's input adds the conditional vector
    loss: str = "wasserstein"     # adversarial loss (gankit.losses); ctgan-dp: nonsaturating
    gp_weight: float = 10.0       # WGAN-GP lambda (CTGAN: 10); 0 = off (required under DP-SGD)
    pac: int = 10                 # rows per discriminator pack (CTGAN: 10); 1 = no packing (required under DP)
    tau: float = 0.2              # Gumbel-softmax temperature (CTGAN: 0.2)
    cond_weight: float = 1.0      # weight of the generator's condition loss (CTGAN: 1)

    def __post_init__(self) -> None:
        adversarial_losses.get(self.loss)
        if self.z_dim < 1 or self.pac < 1:
            raise ConfigError(f"z_dim and pac must be positive, got {self.z_dim} and {self.pac}.")
        if self.gp_weight < 0 or self.tau <= 0 or self.cond_weight < 0:
            raise ConfigError(f"gp_weight and cond_weight must be >= 0 and tau > 0, got {self.gp_weight}, "
                              f"{self.cond_weight}, {self.tau}.")


@recipes.register("ctgan")
class CTGAN(Recipe):
    Options = CTGANOptions
    data_kinds = ("table",)
    sampler_kind = "rows"
    test_overrides = {"batch_size": 20}      # shared tests: two packs of pac = 10 rows

    def __init__(self, nets: dict[str, nn.Module], opts: CTGANOptions, info: DataInfo, batch_size: int):
        super().__init__(nets, opts, info)
        self.meta = info.extras["table"]
        self.cond = CondVector(self.meta)
        self.adv = adversarial_losses.get(opts.loss)
        self.batch_size = batch_size
        self.per_sample = False           # set by enable_per_sample (DP-SGD)

    @classmethod
    def from_config(cls, cfg: Any, info: DataInfo) -> "CTGAN":
        opts: CTGANOptions = cls.parse_options(cfg.opts)
        meta = info.extras.get("table")
        if meta is None:
            raise ConfigError(f"ctgan trains on tables; {info.name!r} carries no table metadata.")
        if cfg.batch_size % opts.pac:
            raise ConfigError(f"batch_size ({cfg.batch_size}) must be a multiple of pac ({opts.pac}): D scores "
                              f"packs of pac rows.")
        cond_dim, row_dim = int(meta["cond_dim"]), int(meta["dim"])
        nets = {"G": build_net("G", cfg.G, "vector", {"z_dim": opts.z_dim + cond_dim, "out_dim": row_dim}),
                "D": build_net("D", cfg.D, "vector", {"in_dim": (row_dim + cond_dim) * opts.pac})}
        recipe = cls(nets, opts, info, cfg.batch_size)
        recipe.d_steps = cfg.d_steps
        return recipe

    def enable_per_sample(self, batch_size: int) -> int:
        if self.opts.pac != 1:
            raise ConfigError(f"DP-SGD clips one gradient per discriminator input, and with pac={self.opts.pac} an "
                              f"input is a pack of {self.opts.pac} rows: set pac=1 (the ctgan-dp preset does), so "
                              "that the privacy unit is one row.")
        if self.opts.gp_weight > 0:
            raise ConfigError("DP-SGD needs per-sample gradients, which a gradient penalty breaks (it mixes a real "
                              "and a fake row and needs second-order gradients; Opacus issue #31): set gp_weight=0 "
                              "and loss=nonsaturating (the ctgan-dp preset).")
        self.per_sample = True
        return 2 * batch_size            # rows of D's one forward: about batch real + batch fake

    def data_statistics(self) -> dict[str, torch.Tensor]:
        """The category counts of every discrete column (what the conditional vector is drawn from)."""
        return {f"counts/{self.meta['columns'][c['column']]['name']}":
                torch.tensor(self.meta["columns"][c["column"]]["counts"], dtype=torch.float64)
                for c in self.meta["cond"]}

    def set_data_statistics(self, stats: dict[str, torch.Tensor]) -> None:
        """Noisy counts replace the data's in the metadata (so samplers and checkpoints use them too)."""
        for c in self.meta["cond"]:
            col = self.meta["columns"][c["column"]]
            key = f"counts/{col['name']}"
            if key in stats:
                counts = stats[key].double().clamp(min=0)
                if counts.sum() <= 0:
                    counts = torch.ones_like(counts)
                col["counts"] = counts.tolist()
        self.cond = CondVector(self.meta)

    # ---- helpers --------------------------------------------------------------------------------------------
    def _fake(self, cond: torch.Tensor, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw G output [N, D], activated row [N, D]) for conditional vectors cond [N, C]."""
        z = ctx.randn(len(cond), self.opts.z_dim, device=cond.device)
        raw = self.nets["G"](torch.cat([z, cond], 1))
        return raw, activate(raw, self.meta["spans"], self.opts.tau)

    def _pack(self, rows: torch.Tensor) -> torch.Tensor:
        return rows.reshape(-1, self.opts.pac * rows.shape[1])               # [N, W] -> [N / pac, pac W]

    def _draw_cond(self, n: int, ctx: StepContext, device: torch.device) -> torch.Tensor:
        """Conditional vectors for fake rows: by log-frequency when the real rows were drawn by category
        (training-by-sampling), by frequency when they are uniform (Poisson sampling under DP), so that D sees
        the same distribution of conditions on both sides."""
        return self.cond.from_uniform(ctx.rand(n, 2, device=device), "empirical" if self.per_sample else "log")

    # ---- objective -------------------------------------------------------------------------------------------
    def d_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        real = batch["x"]                                                    # [B, D] encoded rows
        device, D = real.device, self.nets["D"]
        if self.per_sample:
            # DP-SGD: the real batch is Poisson-sampled (any size); each real row's conditional vector comes from
            # the row itself, fake rows (a fixed batch) draw theirs from the category frequencies, and D's loss
            # is a plain mean over one forward: per-row gradients, each depending on one real row at most.
            real_cond = self.cond.from_rows(real, ctx.rand(len(real), device=device))
            fake_cond = self._draw_cond(self.batch_size, ctx, device)
            with torch.no_grad():
                _, fake = self._fake(fake_cond, ctx)
            scores = D(torch.cat([torch.cat([real, real_cond], 1), torch.cat([fake, fake_cond], 1)]))   # [B' + B]
            n_real = len(real)
            real_score, fake_score = scores[:n_real], scores[n_real:]
            loss = per_row_mean(self.adv, real_score, fake_score)
            out = {"loss": loss, "D/fake": fake_score.detach().mean(), "D/real_rows": torch.tensor(float(n_real))}
            if n_real:
                out["D/adv"] = self.adv.d(real_score, fake_score).detach()
                out["D/real"] = real_score.detach().mean()
            return out
        cond = batch["cond"] if "cond" in batch else self.cond.from_rows(real, ctx.rand(len(real), device=device))
        # CTGAN pairs the fakes with the real batch's conditions in another order (its perm): same multiset.
        perm = torch.argsort(ctx.rand(len(real), device=device))
        fake_cond = cond[perm]
        with torch.no_grad():
            _, fake = self._fake(fake_cond, ctx)
        real_in = self._pack(torch.cat([real, cond], 1))                     # [B / pac, pac (D + C)]
        fake_in = self._pack(torch.cat([fake, fake_cond], 1))
        real_score, fake_score = D(real_in), D(fake_in)
        adv = self.adv.d(real_score, fake_score)
        out = {"D/adv": adv.detach(), "D/real": real_score.detach().mean(), "D/fake": fake_score.detach().mean()}
        loss = adv
        if self.opts.gp_weight > 0:
            # Gulrajani et al. 2017, eq. 3, on packs: one interpolation weight per pack (as CTGAN's code).
            gp = gradient_penalty(D, real_in, fake_in, alpha=ctx.rand(len(real_in), device=device))
            loss = loss + self.opts.gp_weight * gp
            out["D/gp"] = gp.detach()
        out["loss"] = loss
        return out

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        # The generator never reads the real batch (it only sets the device): under DP-SGD the rows reach G
        # only through D's privatised weights.
        device = batch["x"].device
        cond = self._draw_cond(self.batch_size, ctx, device)
        raw, fake = self._fake(cond, ctx)
        fake_in = torch.cat([fake, cond], 1)
        score = self.nets["D"](fake_in if self.per_sample else self._pack(fake_in))
        adv = self.adv.g(score)
        cond_loss = self.cond.loss(raw, cond)
        loss = adv + self.opts.cond_weight * cond_loss
        return {"loss": loss, "G/adv": adv.detach(), "G/cond": cond_loss.detach()}

    # ---- using the model -----------------------------------------------------------------------------------
    def fixed_inputs(self, n: int, seed: int, dataset: Any) -> dict[str, Any]:
        return {"n": n, "seed": seed}

    @torch.no_grad()
    def snapshot(self, fixed: dict[str, Any], nets: nn.ModuleDict) -> list:
        return [TablePreview(self.sampler(nets).draw(n=fixed["n"], seed=fixed["seed"]))]

    def samplers(self, nets: nn.ModuleDict | None = None) -> dict[str, RowSampler]:
        G = (nets if nets is not None else self.nets)["G"]
        return {"default": RowSampler(G, self.meta, self.opts.z_dim)}


def per_row_mean(adv, real_score: torch.Tensor, fake_score: torch.Tensor) -> torch.Tensor:
    """D's loss as a plain mean over the rows of one forward, (sum_i a(r_i) + sum_j b(f_j)) / (n_r + n_f), for a
    loss adv.d(r, f) = mean_i a(r_i) + mean_j b(f_j) (every registered loss is of this form).

    n_r adv.d(r, c) = sum_i a(r_i) + n_r b(c) for a constant score c, so (n_r adv.d(r, c) + n_f adv.d(c, f)) / n
    has exactly the gradient of that mean (it differs by a constant). The weights 1 / n make each row's gradient
    its own term's (Opacus' "mean" reduction multiplies by n): the normalisation of the others' gradients does
    not depend on whether a given real row is in the batch, which the DP-SGD sensitivity bound needs. A plain
    adv.d(r, f) would weigh real rows 1 / n_r, a factor that changes with every row added or removed."""
    c = fake_score.new_zeros(1)
    n = len(real_score) + len(fake_score)
    total = len(fake_score) * adv.d(c, fake_score)
    if len(real_score):
        total = total + len(real_score) * adv.d(real_score, c)
    return total / n
