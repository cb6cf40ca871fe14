"""What table families share: the conditional vector, the per-span activations, the "rows" sampler kind, the
``--condition`` sampling option, the ``rows:.csv`` / ``rows:.parquet`` output formats and the table preview
artefact (``samples-<kimg>.csv``). The encoding itself (spans, mixtures, dtypes) is ``gankit.data.tables``.

The conditional vector (Xu et al. 2019, sec. 4.3) is a one-hot over the categories of every discrete column
concatenated ([N, cond_dim]); exactly one column is "chosen" per row, and its span holds the category.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..artefacts import Artefact
from ..data.tables import decode, log_frequency_probs
from ..errors import ConfigError
from ..io import atomic_write_bytes, atomic_write_text
from ..samplers import EvalRequest, Sampler, output_formats, register_sample_option, sampler_kinds

register_sample_option("condition", str, "Table models: generate rows with a discrete column fixed, as "
                       "column=value (e.g. species=Adelie); the vector conditions G, rows that miss are redrawn.")

SAMPLING_MODES = ("log", "empirical")


class CondVector:
    """The conditional vector of a table's metadata: drawing it, reading it off real rows, parsing conditions."""

    def __init__(self, meta: dict):
        self.meta = meta
        self.columns = meta["cond"]                               # [{column, x_start, start, size}]
        self.dim = int(meta["cond_dim"])
        counts = [torch.tensor(meta["columns"][c["column"]]["counts"], dtype=torch.float64) for c in self.columns]
        width = max((len(c) for c in counts), default=1)
        # Per column, the CDF over its categories [n_cols, width], padded with 1s.
        self.cdf = {mode: self._cdf([log_frequency_probs(c) if mode == "log" else c / c.sum() for c in counts],
                                    width) for mode in SAMPLING_MODES}

    @staticmethod
    def _cdf(probs: list[torch.Tensor], width: int) -> torch.Tensor:
        out = torch.ones(len(probs), width, dtype=torch.float64)
        for i, p in enumerate(probs):
            out[i, :len(p)] = p.cumsum(0)
            out[i, len(p) - 1:] = 1.0
        return out

    def from_uniform(self, u: torch.Tensor, mode: str) -> torch.Tensor:
        """Conditional vectors [N, cond_dim] from uniforms u [N, 2]: column = floor(u0 * n_cols) (uniform over the
        discrete columns), category by inverse CDF of u1 under ``mode`` ("log": P ~ log(1 + n_k), CTGAN's
        training-by-sampling; "empirical": P ~ n_k, the data's own frequencies, as CTGAN samples)."""
        n = len(u)
        cond = torch.zeros(n, self.dim, device=u.device)
        if not self.columns:
            return cond
        col = (u[:, 0] * len(self.columns)).long().clamp(max=len(self.columns) - 1)          # [N]
        cdf = self.cdf[mode].to(u.device)[col]                                                 # [N, width]
        k = (cdf < u[:, 1:2].double()).sum(1)                                                  # [N]
        starts = torch.tensor([c["start"] for c in self.columns], device=u.device)[col]
        sizes = torch.tensor([c["size"] for c in self.columns], device=u.device)[col]
        cond[torch.arange(n, device=u.device), starts + torch.minimum(k, sizes - 1)] = 1.0
        return cond

    def from_rows(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Conditional vectors read off encoded real rows x [N, D]: per row a discrete column chosen by u [N]
        (uniformly), its category the row's own. Each vector depends on its own row only (DP-SGD's unit)."""
        n = len(x)
        cond = torch.zeros(n, self.dim, device=x.device)
        if not self.columns:
            return cond
        col = (u * len(self.columns)).long().clamp(max=len(self.columns) - 1)
        for i, c in enumerate(self.columns):
            rows = col == i
            cond[rows, c["start"]:c["start"] + c["size"]] = x[rows, c["x_start"]:c["x_start"] + c["size"]]
        return cond

    def loss(self, raw: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """CTGAN's generator condition loss: the cross-entropy between G's logits of the chosen column and the
        conditioned category, summed over columns where chosen, averaged over rows (Xu et al. 2019, sec. 4.3)."""
        total = raw.new_zeros(len(raw))
        for c in self.columns:
            target_block = cond[:, c["start"]:c["start"] + c["size"]]                       # [N, size]
            chosen = target_block.sum(1)                                                   # [N] 1 where chosen
            logits = raw[:, c["x_start"]:c["x_start"] + c["size"]]
            total = total + F.cross_entropy(logits, target_block.argmax(1), reduction="none") * chosen
        return total.mean()

    def parse(self, text: str) -> tuple[int, int]:
        """'species=Adelie' -> (index in self.columns, category index); errors name the valid choices."""
        names = [self.meta["columns"][c["column"]]["name"] for c in self.columns]
        if "=" not in text:
            raise ConfigError(f"--condition {text!r} must look like column=value; discrete columns: "
                              f"{', '.join(names) or 'none'}.")
        column, value = (p.strip() for p in text.split("=", 1))
        all_names = [c["name"] for c in self.meta["columns"]]
        if column not in names:
            why = "is not discrete (only categorical and boolean columns condition the generator)" \
                if column in all_names else "is not a column"
            raise ConfigError(f"--condition: {column!r} {why}; discrete columns: {', '.join(names) or 'none'}.")
        i = names.index(column)
        categories = self.meta["columns"][self.columns[i]["column"]]["categories"]
        spelled = ["" if v is None else str(v) for v in categories]
        if value not in spelled:
            raise ConfigError(f"--condition: {column!r} has no value {value!r}; its values: "
                              f"{', '.join(repr(v) for v in spelled)}.")
        return i, spelled.index(value)

    def fixed(self, n: int, i: int, k: int) -> torch.Tensor:
        cond = torch.zeros(n, self.dim)
        cond[:, self.columns[i]["start"] + k] = 1.0
        return cond


def activate(raw: torch.Tensor, spans: Sequence[dict], tau: float = 0.2, hard: bool = False,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """G's raw row [N, D] -> the encoded form D sees: tanh on each alpha, Gumbel-softmax (temperature tau) on
    every mode / category / missing span (Xu et al. 2019, sec. 4.4; Jang et al. 2017). ``hard`` samples one-hot
    rows by the Gumbel-max trick with ``generator`` (sampling; the same distribution as CTGAN's argmax of a
    Gumbel-softmax draw)."""
    parts = []
    for sp in spans:
        block = raw[:, sp["start"]:sp["start"] + sp["size"]]
        if sp["kind"] == "alpha":
            parts.append(torch.tanh(block))
        elif hard:
            u = torch.rand(block.shape, generator=generator).to(block.device).clamp(1e-10, 1 - 1e-10)
            gumbel = -torch.log(-torch.log(u))
            parts.append(F.one_hot((block + gumbel).argmax(1), sp["size"]).to(block.dtype))
        else:
            parts.append(F.gumbel_softmax(block, tau=tau, hard=False))
    return torch.cat(parts, dim=1) if parts else raw


# ---- the "rows" sampler kind ---------------------------------------------------------------------------------

@sampler_kinds.register("rows")
class RowSampler(Sampler):
    """G(z, cond) -> table rows as a pandas DataFrame with the training table's columns, dtypes and labels.

    Unconditional rows draw the conditional vector as CTGAN samples: a discrete column uniformly, a category by
    its frequency in the training rows. ``--condition column=value`` fixes it; rows whose column came out
    otherwise are redrawn (up to ``MAX_ROUNDS`` times, then kept and counted in ``last_misses``).
    """

    kind = "rows"
    commands = ("sample",)
    options = ("condition",)
    output = "rows"
    MAX_ROUNDS = 50

    def __init__(self, generator: nn.Module, meta: dict, z_dim: int):
        self.G, self.meta, self.z_dim = generator, meta, z_dim
        self.cond = CondVector(meta)
        self.last_misses = 0

    def _encoded(self, n: int, g: torch.Generator, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Activated rows [n, D] for fixed or drawn conditional vectors (all randomness from ``g``)."""
        device = next(self.G.parameters()).device
        z = torch.randn(n, self.z_dim, generator=g)
        if cond is None:
            cond = self.cond.from_uniform(torch.rand(n, 2, generator=g), "empirical")
        with torch.no_grad():
            raw = self.G(torch.cat([z, cond], 1).to(device)).cpu()
        return activate(raw, self.meta["spans"], hard=True, generator=g)

    def _generate(self, n: int, g: torch.Generator, condition: str | None):
        if condition is None:
            return decode(self._encoded(n, g).numpy(), self.meta)
        i, k = self.cond.parse(condition)
        c = self.cond.columns[i]
        keep: list[torch.Tensor] = []
        have, last = 0, None
        for _ in range(self.MAX_ROUNDS):
            x = self._encoded(max(n - have, 1) if have else n, g, self.cond.fixed(max(n - have, 1) if have else n,
                                                                                 i, k))
            ok = x[:, c["x_start"] + k] == 1
            keep.append(x[ok])
            have += int(ok.sum())
            last = x[~ok]
            if have >= n:
                break
        rows = torch.cat(keep)[:n]
        self.last_misses = max(0, n - len(rows))
        if len(rows) < n:
            rows = torch.cat([rows, last[:n - len(rows)]])
        return decode(rows.numpy(), self.meta)

    def draw(self, n: int | None = None, seed: int = 0, seeds: Sequence[int] | None = None,
             condition: str | None = None):
        import pandas as pd
        if seeds is not None:                     # one row per seed, each from its own generator
            frames = [self._generate(1, torch.Generator().manual_seed(int(s)), condition) for s in seeds]
            return pd.concat(frames, ignore_index=True)
        return self._generate(int(n), torch.Generator().manual_seed(seed), condition)

    def __call__(self, n: int, seed: int):
        return self.draw(n=n, seed=seed)

    @classmethod
    def check_metrics(cls, names: Sequence[str]) -> None:
        if names:
            raise ConfigError(f"Metrics {list(names)} score images; table models are scored by `gankit eval --ckpt "
                              f"RUN` (fidelity, correlations, ML utility, privacy audits), not during training.")

    def evaluate(self, request: EvalRequest) -> dict[str, Any]:
        from ..metrics.tables import evaluate_table_sampler
        return evaluate_table_sampler(self, request)


# ---- writers of `gankit sample --out` ------------------------------------------------------------------------

@output_formats.register("rows:.csv")
def _write_csv(frame, path: Path, **_: Any) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


@output_formats.register("rows:.parquet")
def _write_parquet(frame, path: Path, **_: Any) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ConfigError("Writing .parquet needs pyarrow (pip install pyarrow, or 'gankit[tables]'); "
                          "--out x.csv needs nothing more.") from None
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


@output_formats.register("rows:.npy")
def _refuse_npy(frame, path: Path, **_: Any) -> None:
    raise ConfigError(f"--out {str(path)!r}: table rows keep their column names and dtypes in .csv or .parquet; "
                      f"a .npy array would lose them.")


# ---- snapshot artefact -----------------------------------------------------------------------------------------

@dataclass
class TablePreview(Artefact):
    """Generated rows as ``<stem>.csv`` (issue 15's report shows .csv artefacts as tables)."""
    frame: Any
    name: str = "samples"
    suffix: str = ".csv"

    def write(self, stem: Path, log: Any, nimg: int) -> Path:
        path = stem.with_name(stem.name + self.suffix)
        atomic_write_text(path, self.frame.to_csv(index=False))
        return path


__all__ = ["CondVector", "activate", "RowSampler", "TablePreview"]
