"""Tables (kind "table"): CSV / Parquet files and bundled tables, with column types inferred and overridable,
CTGAN's mode-specific normalisation, and the metadata that decodes generated rows back to the same dtypes.

    {'x': float [D]}   one encoded row; ``info.extras["table"]`` says which span of x is which column

Column types (``infer_types``; override with ``--set data.discrete=[a,b]`` / ``data.continuous=[c]``):

    continuous   float columns                                  -> alpha (tanh) + mode one-hot (softmax)
    integer      integral numbers (also float columns whose values are all whole, as pandas reads an int
                 column with gaps), rounded on decode           -> as continuous
    datetime     datetime64 columns or text that parses as ISO dates, in seconds since 1970 -> as continuous
    categorical  text, pandas categories, integers with at most ``max_int_categories`` distinct values, and any
                 column with at most two distinct values         -> one-hot over the categories
    boolean      bool columns                                    -> one-hot over (False, True)

Missing values (``data.missing``): ``category`` (default) keeps them: a categorical column gets a missing
category, a numeric column a two-way present/missing span (decoded to NaN / NaT); ``impute`` fills numeric
gaps with the median and categorical ones with the most frequent value, so generated tables have none.

Mode-specific normalisation (Xu et al. 2019, CTGAN, sec. 4.2): a variational Gaussian mixture
(scikit-learn's BayesianGaussianMixture, Dirichlet-process prior 0.001, at most ``max_modes`` components, those
with weight > 0.005 kept) is fitted per numeric column; a value c is represented by a mode k drawn from the
mixture's posterior and alpha = (c - mu_k) / (4 sigma_k), clipped to [-0.99, 0.99]; decoding is
c = alpha * 4 sigma_k + mu_k with k the mode of largest output.

Everything decoding needs (types, dtypes, category labels, ranges, mixture modes, spans, category counts) is
plain data in ``info.extras["table"]``, hence in every checkpoint. ``data.holdout`` (default 0.2) keeps a seeded
share of the rows out of training (``data.split=test`` gives them): the evaluation card's utility and privacy
audits test on them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .base import DataInfo, MemoryDataset, register_kind
from .catalog import PathFormat, builtin, path_formats

TYPES = ("continuous", "integer", "datetime", "categorical", "boolean")
NUMERIC = ("continuous", "integer", "datetime")
DISCRETE = ("categorical", "boolean")
MISSING_CHOICES = ("category", "impute")
SUFFIXES = (".csv", ".tsv", ".parquet", ".json")
CLIP = 0.99                  # CTGAN clips alpha to [-0.99, 0.99]
STD_SCALE = 4.0              # alpha = (c - mu) / (4 sigma)
MODE_MIN_WEIGHT = 0.005      # CTGAN keeps mixture components with weight > 0.005


@dataclass
class TableOptions:
    """Options of the "table" data kind (``--set data.<name>=...``)."""
    discrete: list = field(default_factory=list)     # columns to treat as categorical whatever their dtype
    continuous: list = field(default_factory=list)   # numeric columns to treat as continuous (not categorical)
    target: str = ""                # the column ML utility predicts (builtins name theirs; "" = none)
    missing: str = "category"       # category (keep missing values as a value) | impute (median / most frequent)
    max_modes: int = 10             # mixture components per numeric column (CTGAN: 10)
    max_int_categories: int = 10    # integer columns with at most this many values are categorical
    holdout: float = 0.2            # share of rows kept out of training for the evaluation card (0 = none)

    def __post_init__(self) -> None:
        if self.missing not in MISSING_CHOICES:
            raise DataError(f"data.missing must be one of {', '.join(MISSING_CHOICES)}, got {self.missing!r}.")
        if not 0 <= self.holdout < 1:
            raise DataError(f"data.holdout must be in [0, 1), got {self.holdout}.")
        if self.max_modes < 1:
            raise DataError(f"data.max_modes must be at least 1, got {self.max_modes}.")


register_kind("table", "{'x': float [D]} one encoded row; info.extras['table'] holds the column spans and types",
              options=TableOptions)


# ---- reading ------------------------------------------------------------------------------------------------

def read_table(path: str | Path):
    """A CSV / TSV / Parquet / JSON-records file as a pandas DataFrame (what gankit reads, and how it reads its
    own output)."""
    import pandas as pd
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            try:
                return pd.read_parquet(path)
            except ImportError:
                raise DataError(f"Reading {str(path)!r} needs pyarrow: pip install 'gankit[tables]'.") from None
        if suffix == ".json":                             # a list of records (vega_datasets' cars.json)
            return pd.read_json(path, orient="records")
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except (OSError, ValueError) as e:
        raise DataError(f"Cannot read table {str(path)!r}: {e}") from None


def _json_scalar(v: Any) -> Any:
    """A pandas / numpy scalar as a plain JSON value (None for missing)."""
    import pandas as pd
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


# ---- column types ---------------------------------------------------------------------------------------------

def _parse_dates(s):
    """The column as datetimes if every present value is an ISO date, else None."""
    import pandas as pd
    if pd.api.types.is_datetime64_any_dtype(s):
        return s
    if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
        return None
    present = s.dropna()
    if present.empty or not present.astype(str).str.match(r"^\d{4}-\d{2}-\d{2}").all():
        return None
    parsed = pd.to_datetime(s, errors="coerce", format="ISO8601")
    return parsed if parsed.notna().sum() == present.size else None


def infer_types(frame, opts: TableOptions) -> dict[str, str]:
    """Column name -> one of ``TYPES``, by the rules in the module docstring, then the user's overrides."""
    import pandas as pd
    unknown = [c for c in [*opts.discrete, *opts.continuous] if c not in frame.columns]
    if unknown:
        raise DataError(f"data.discrete / data.continuous name column(s) {unknown} that the table does not have; "
                        f"its columns: {', '.join(map(str, frame.columns))}.")
    both = set(opts.discrete) & set(opts.continuous)
    if both:
        raise DataError(f"Column(s) {sorted(both)} are listed in both data.discrete and data.continuous.")
    types = {}
    for name in frame.columns:
        s = frame[name]
        n_unique = s.nunique(dropna=True)
        if pd.api.types.is_bool_dtype(s):
            kind = "boolean"
        elif _parse_dates(s) is not None:
            kind = "datetime"
        elif pd.api.types.is_numeric_dtype(s):
            present = s.dropna().to_numpy(dtype=np.float64)
            integral = present.size > 0 and bool(np.all(present == np.round(present)))
            if n_unique <= 2 or (integral and n_unique <= opts.max_int_categories):
                kind = "categorical"
            else:
                kind = "integer" if integral else "continuous"
        else:
            kind = "categorical"
        if name in opts.discrete:
            kind = "boolean" if kind == "boolean" else "categorical"
        if name in opts.continuous:
            if kind not in NUMERIC and not pd.api.types.is_numeric_dtype(s):
                raise DataError(f"data.continuous: column {name!r} is not numeric ({s.dtype}); only numbers and "
                                f"dates can be continuous.")
            if kind not in NUMERIC:
                present = s.dropna().to_numpy(dtype=np.float64)
                kind = "integer" if present.size and np.all(present == np.round(present)) else "continuous"
        if n_unique == 0:
            raise DataError(f"Column {name!r} has no values at all; drop it from the table.")
        types[str(name)] = kind
    return types


# ---- the transformer: fit on the training rows, encode rows, decode rows --------------------------------------

def _numeric_values(s, kind: str) -> np.ndarray:
    """float64 values of a numeric / datetime column (NaN where missing); datetimes in seconds since 1970."""
    if kind == "datetime":
        parsed = _parse_dates(s)
        out = np.full(len(s), np.nan)
        ok = parsed.notna().to_numpy()
        out[ok] = parsed[ok].astype("datetime64[ns]").astype("int64").to_numpy() / 1e9
        return out
    return s.to_numpy(dtype=np.float64, na_value=np.nan)


def fit_mixture(values: np.ndarray, max_modes: int, seed: int) -> dict:
    """CTGAN's per-column variational Gaussian mixture: the kept modes' weights, means and standard deviations."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture
    import warnings
    x = values.reshape(-1, 1)
    n_components = max(1, min(max_modes, len(np.unique(x))))
    bgm = BayesianGaussianMixture(n_components=n_components, weight_concentration_prior_type="dirichlet_process",
                                  weight_concentration_prior=0.001, max_iter=100, n_init=1, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bgm.fit(x)
    keep = bgm.weights_ > MODE_MIN_WEIGHT
    if not keep.any():
        keep = bgm.weights_ == bgm.weights_.max()
    stds = np.sqrt(bgm.covariances_.reshape(-1))
    return {"weights": bgm.weights_[keep].tolist(), "means": bgm.means_.reshape(-1)[keep].tolist(),
            "stds": np.maximum(stds[keep], 1e-6).tolist(), "_model": bgm, "_keep": keep}


def mode_posterior(mix: dict, values: np.ndarray) -> np.ndarray:
    """P(mode k | value) over the kept modes [N, K] (the fitted mixture's posterior, renormalised)."""
    probs = mix["_model"].predict_proba(values.reshape(-1, 1))[:, mix["_keep"]] + 1e-12
    return probs / probs.sum(axis=1, keepdims=True)


def normalise(values: np.ndarray, means: np.ndarray, stds: np.ndarray, mode: np.ndarray) -> np.ndarray:
    """alpha = (c - mu_k) / (4 sigma_k), clipped to [-0.99, 0.99] (Xu et al. 2019, sec. 4.2)."""
    return np.clip((values - means[mode]) / (STD_SCALE * stds[mode]), -CLIP, CLIP)


def denormalise(alpha: np.ndarray, means: np.ndarray, stds: np.ndarray, mode: np.ndarray) -> np.ndarray:
    """c = alpha * 4 sigma_k + mu_k: the inverse of ``normalise`` for |alpha| < 0.99."""
    return np.clip(alpha, -1.0, 1.0) * STD_SCALE * stds[mode] + means[mode]


@dataclass
class Encoded:
    x: np.ndarray                      # [N, D] float32 encoded rows
    meta: dict                         # plain data (JSON): columns, spans, conditional vector
    category_rows: list                # per discrete column: per category, the row indices holding it


def fit_encode(frame, opts: TableOptions, seed: int, name: str) -> Encoded:
    """Infer types, fit the mixtures and category lists on ``frame``, and encode it."""
    import pandas as pd
    types = infer_types(frame, opts)
    if opts.target and opts.target not in types:
        raise DataError(f"data.target {opts.target!r} is not a column; the columns: {', '.join(types)}.")
    rng = np.random.default_rng(seed)
    columns, spans, blocks = [], [], []
    cond_columns, category_rows = [], []
    width = 0

    def add_span(kind: str, column: int, size: int) -> None:
        nonlocal width
        spans.append({"column": column, "kind": kind, "start": width, "size": size})
        width += size

    for ci, col in enumerate(frame.columns):
        s, kind = frame[col], types[str(col)]
        has_missing = bool(s.isna().any())
        meta: dict[str, Any] = {"name": str(col), "type": kind, "dtype": str(s.dtype),
                                "missing": has_missing and opts.missing == "category"}
        if kind in NUMERIC:
            values = _numeric_values(s, kind)
            present = ~np.isnan(values)
            fill = float(np.median(values[present]))
            values = np.where(present, values, fill)
            meta.update(min=float(values[present].min()), max=float(values[present].max()))
            if kind == "datetime":     # the finest unit the dates use: whole days, or seconds
                meta["unit_s"] = 86400 if np.all(values[present] % 86400 == 0) else 1
            mix = fit_mixture(values[present] if present.sum() > 1 else values, opts.max_modes, seed)
            means, stds = np.array(mix["means"]), np.array(mix["stds"])
            probs = mode_posterior(mix, values)
            # CTGAN draws each value's mode from the posterior (not its argmax), so a value between two modes
            # is sometimes represented by either.
            mode = (probs.cumsum(1) > rng.random((len(values), 1))).argmax(1)
            alpha = normalise(values, means, stds, mode)
            meta.update(weights=mix["weights"], means=mix["means"], stds=mix["stds"])
            add_span("alpha", ci, 1)
            add_span("mode", ci, len(means))
            onehot = np.eye(len(means))[mode]
            blocks += [alpha[:, None], onehot]
            if meta["missing"]:
                add_span("missing", ci, 2)
                blocks.append(np.stack([present, ~present], 1).astype(np.float64))
        else:
            labels = [_json_scalar(v) for v in s.tolist()]
            if has_missing and opts.missing == "impute":
                most = s.mode(dropna=True).iloc[0]
                labels = [_json_scalar(most) if v is None else v for v in labels]
            categories = sorted(set(labels), key=lambda v: (v is None, str(type(v)), str(v)))
            index = {v: i for i, v in enumerate(categories)}
            codes = np.array([index[v] for v in labels])
            meta.update(categories=categories, counts=np.bincount(codes, minlength=len(categories)).tolist())
            add_span("category", ci, len(categories))
            blocks.append(np.eye(len(categories))[codes])
            cond_columns.append(ci)
            category_rows.append([np.flatnonzero(codes == k) for k in range(len(categories))])
        if pd.api.types.is_datetime64_any_dtype(s) or kind == "datetime":
            meta["dtype"] = str(s.dtype)
        columns.append(meta)

    # The conditional vector (CTGAN sec. 4.3): one-hot over the categories of every discrete column, in order.
    cond, offset = [], 0
    for ci in cond_columns:
        span = next(sp for sp in spans if sp["column"] == ci and sp["kind"] == "category")
        cond.append({"column": ci, "x_start": span["start"], "start": offset, "size": span["size"]})
        offset += span["size"]
    x = np.concatenate(blocks, axis=1).astype(np.float32) if blocks else np.zeros((len(frame), 0), np.float32)
    target = opts.target
    meta = {"name": name, "columns": columns, "spans": spans, "dim": width, "cond": cond, "cond_dim": offset,
            "target": target, "missing": opts.missing, "n_rows": len(frame)}
    return Encoded(x, meta, category_rows)


def decode(x: np.ndarray, meta: dict):
    """Encoded (or generated, activated) rows [N, D] -> a DataFrame with the training table's dtypes and labels.

    Mode and category spans are read by their largest entry; numeric values are clipped to the training range
    (integers and dates rounded), missing spans turned into NaN / NaT."""
    import pandas as pd
    out = {}
    by_column: dict[int, dict[str, dict]] = {}
    for sp in meta["spans"]:
        by_column.setdefault(sp["column"], {})[sp["kind"]] = sp
    for ci, col in enumerate(meta["columns"]):
        sp = by_column[ci]
        block = lambda kind: x[:, sp[kind]["start"]:sp[kind]["start"] + sp[kind]["size"]]   # noqa: E731
        if col["type"] in NUMERIC:
            mode = block("mode").argmax(1)
            values = denormalise(block("alpha")[:, 0].astype(np.float64), np.array(col["means"]),
                                 np.array(col["stds"]), mode)
            values = np.clip(values, col["min"], col["max"])
            missing = block("missing").argmax(1) == 1 if col["missing"] else np.zeros(len(x), bool)
            if col["type"] == "datetime":
                unit = col.get("unit_s", 1)
                ns = (np.round(values / unit) * unit * 1e9).astype("int64")
                series = pd.Series(pd.to_datetime(ns, unit="ns"))
                series[missing] = pd.NaT
                if not col["dtype"].startswith("datetime64"):      # read from text: write text back
                    series = series.dt.strftime("%Y-%m-%d").where(~missing, None)
            else:
                if col["type"] == "integer":
                    values = np.round(values)
                values = np.where(missing, np.nan, values)
                series = pd.Series(values)
            out[col["name"]] = _restore_dtype(series, col)
        else:
            codes = block("category").argmax(1)
            labels = [col["categories"][k] for k in codes]
            out[col["name"]] = _restore_dtype(pd.Series(labels, dtype=object), col)
    return pd.DataFrame(out)


def _restore_dtype(series, col: dict):
    """The column in the training table's dtype (pandas spells the dtype; categories keep their labels)."""
    import pandas as pd
    dtype = col["dtype"]
    if dtype == "category":
        return pd.Series(pd.Categorical(series, categories=[c for c in col["categories"] if c is not None]))
    if series.isna().any() and dtype.startswith(("int", "uint")):
        dtype = "Int64"                                   # an int column that gained a gap
    if dtype == "bool" and series.isna().any():
        dtype = "boolean"
    if dtype in ("object", "str", "string"):
        return series.astype(object).where(series.notna(), None).astype(dtype) if dtype != "object" else \
            series.astype(object).where(series.notna(), None)
    try:
        return series.astype(dtype)
    except (TypeError, ValueError):
        return series


# ---- the dataset --------------------------------------------------------------------------------------------

class TableDataset(MemoryDataset):
    """Encoded rows in memory, with CTGAN's training-by-sampling as its own batch draw (``draw``).

    ``frame`` is the training table as read (decoding targets its dtypes), ``holdout`` the rows kept out.
    """

    def __init__(self, enc: Encoded, info: DataInfo, frame, holdout, log_frequency: bool = True):
        super().__init__({"x": torch.from_numpy(enc.x)}, info)
        self.meta = enc.meta
        self.frame, self.holdout = frame, holdout
        self.category_rows = [[torch.from_numpy(r) for r in rows] for rows in enc.category_rows]
        counts = [torch.tensor(c["counts"], dtype=torch.float64) for c in (enc.meta["columns"][cc["column"]]
                                                                         for cc in enc.meta["cond"])]
        self.category_probs = [log_frequency_probs(c) for c in counts]

    def draw(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Training-by-sampling (Xu et al. 2019, sec. 4.3): per row, a discrete column uniformly, a category of it
        with probability proportional to log(1 + count), then a real row holding that category. Returns the rows
        and their conditional vectors (one-hot of the chosen category in the concatenated category spans)."""
        cond_meta = self.meta["cond"]
        if not cond_meta:                                        # no discrete column: plain uniform rows
            idx = torch.randint(len(self), (n,), generator=generator)
            return {"x": self.tensors["x"][idx], "cond": torch.zeros(n, 0)}
        column = torch.randint(len(cond_meta), (n,), generator=generator)          # [n]
        cond = torch.zeros(n, self.meta["cond_dim"])
        idx = torch.empty(n, dtype=torch.long)
        for c, cm in enumerate(cond_meta):
            rows = torch.nonzero(column == c).flatten()
            if not len(rows):
                continue
            category = torch.multinomial(self.category_probs[c], len(rows), replacement=True, generator=generator)
            for k in category.unique().tolist():
                at = rows[category == k]
                pool = self.category_rows[c][k]
                idx[at] = pool[torch.randint(len(pool), (len(at),), generator=generator)]
                cond[at, cm["start"] + k] = 1.0
        return {"x": self.tensors["x"][idx], "cond": cond}


def log_frequency_probs(counts: torch.Tensor) -> torch.Tensor:
    """P(category k) = log(1 + n_k) / sum_j log(1 + n_j) (CTGAN's training-by-sampling, sec. 4.3)."""
    logf = torch.log1p(counts.double())
    return logf / logf.sum()


def split_holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, holdout): a seeded permutation, the last ``round(fraction n)`` rows held out."""
    perm = np.random.default_rng(seed + 7919).permutation(n)
    cut = n - int(round(fraction * n))
    return np.sort(perm[:cut]), np.sort(perm[cut:])


def _options(cfg) -> TableOptions:
    from dataclasses import fields
    names = {f.name for f in fields(TableOptions)}
    mine = {k: v for k, v in (cfg.options or {}).items() if k in names}
    for k in ("discrete", "continuous"):
        if isinstance(mine.get(k), str):
            mine[k] = [v for v in mine[k].split(",") if v]
    return TableOptions(**mine)


def load_table(frame, cfg, name: str, default_target: str = "", seed: int = 0) -> TableDataset:
    """The dataset of DataFrame ``frame`` under DataConfig ``cfg``: holdout split, types, mixtures, encoding."""
    if len(frame) < 2 or frame.shape[1] < 1:
        raise DataError(f"{name!r} needs at least two rows and one column, it has {frame.shape}.")
    opts = _options(cfg)
    if not opts.target and default_target:
        opts.target = default_target
    train_idx, hold_idx = split_holdout(len(frame), opts.holdout, seed)
    train, holdout = frame.iloc[train_idx].reset_index(drop=True), frame.iloc[hold_idx].reset_index(drop=True)
    rows = holdout if cfg.split == "test" else train
    if len(rows) < 2:
        raise DataError(f"{name!r}: data.holdout={opts.holdout} leaves {len(rows)} rows for the {cfg.split} split.")
    enc = fit_encode(rows, opts, seed, name)
    enc.meta["source"] = {"spec": cfg.spec, "holdout": opts.holdout, "split": cfg.split, "seed": seed,
                          "n_train": len(train), "n_holdout": len(holdout)}
    info = DataInfo(name=name, kind="table", size=len(rows), dim=enc.meta["dim"], extras={"table": enc.meta})
    return TableDataset(enc, info, rows, holdout if cfg.split != "test" else train)


# The split depends only on the file, so that evaluation can re-create it; the mixtures' seed is fixed too.
SPLIT_SEED = 0

path_formats.register("table")(PathFormat(
    about="a .csv / .tsv / .parquet / .json (records) table of mixed columns (kind table: numbers, categories, "
          "dates, gaps)",
    matches=lambda cfg: Path(cfg.spec).is_file() and cfg.spec.lower().endswith(SUFFIXES),
    provides=lambda cfg: ("table",),
    load=lambda cfg, kind: load_table(read_table(cfg.spec), cfg, Path(cfg.spec).name, seed=SPLIT_SEED),
))


# ---- bundled tables -----------------------------------------------------------------------------------------

def _sklearn_frame(loader: str, target_name: str):
    import sklearn.datasets
    bunch = getattr(sklearn.datasets, loader)(as_frame=True)
    frame = bunch.frame.copy()
    if "target" in frame.columns and target_name != "target":
        frame = frame.rename(columns={"target": target_name})
    names = getattr(bunch, "target_names", None)
    if names is not None and loader != "load_diabetes":            # class names as the labels
        frame[target_name] = [str(names[i]) for i in frame[target_name]]
    return frame


def _penguins_frame():
    try:
        import palmerpenguins
    except ImportError:
        raise DataError("The penguins table ships in the palmerpenguins package: pip install palmerpenguins "
                        "(or 'gankit[tables]').") from None
    return palmerpenguins.load_penguins()


@builtin("penguins", kind="table", about="Palmer penguins, 344 rows: species, island, sex, measurements with gaps "
                                         "(palmerpenguins package)")
def penguins(cfg) -> TableDataset:
    return load_table(_penguins_frame(), cfg, "penguins", default_target="species", seed=SPLIT_SEED)


for _name, _loader, _target, _about in (
        ("breast_cancer", "load_breast_cancer", "diagnosis", "569 rows, 30 measurements + diagnosis (scikit-learn)"),
        ("wine", "load_wine", "cultivar", "178 rows, 13 measurements + cultivar (scikit-learn)"),
        ("iris", "load_iris", "species", "150 rows, 4 measurements + species (scikit-learn)"),
        ("diabetes", "load_diabetes", "progression", "442 rows, 10 standardised features + progression "
                                                     "(regression target; scikit-learn)")):
    def _make(cfg, _loader=_loader, _target=_target, _name=_name) -> TableDataset:
        return load_table(_sklearn_frame(_loader, _target), cfg, _name, default_target=_target, seed=SPLIT_SEED)
    builtin(_name, kind="table", about=_about)(_make)


__all__ = ["TableOptions", "TableDataset", "read_table", "infer_types", "fit_encode", "decode", "load_table",
           "log_frequency_probs", "normalise", "denormalise", "split_holdout", "TYPES"]
