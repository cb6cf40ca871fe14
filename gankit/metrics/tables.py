"""The evaluation card of table models: fidelity, correlations, ML utility and privacy audits.

Groups (``gankit eval --metrics fidelity,privacy``; default all four), each on DataFrames with the training
table's columns (``meta`` = the table metadata of ``gankit.data.tables``):

fidelity     per column: Kolmogorov-Smirnov statistic sup_x |F_real(x) - F_synth(x)| for numeric and date
             columns (present values; scipy.stats.ks_2samp), total-variation distance 1/2 sum_k |p_k - q_k| over
             the categories (missing counted as one) for discrete columns; the missing-value rate difference
correlation  |Pearson r_real - r_synth| over numeric column pairs (pairwise-complete rows), |Cramer's V_real -
             V_synth| over discrete pairs (V = sqrt(chi2 / (n (min(r, c) - 1))), Cramer 1946; scipy's
             ``association``), both averaged
utility      train on synthetic, test on real (TSTR) vs train on real, test on real (TRTR), on the held-out
             rows, with scikit-learn models (logistic regression and a random forest; ridge and a random forest
             for a numeric target), accuracy and macro F1 (R^2 for a numeric target) (Esteban et al. 2017; Xu et
             al. 2019, sec. 5)
privacy      in a common space (numeric columns min-max scaled by the training range, a missing flag, one-hot
             categories; Euclidean distance):
             DCR: distance of each synthetic row to its closest training row, against the same for held-out
                  real rows (synthetic rows much closer to the training rows than fresh real rows are = copying)
             NNDR: nearest / second-nearest training distance of each synthetic row (near 0 = next to one
                  record, near 1 = among several)
             exact-copy rate: share of synthetic rows equal to a training row
             MIA AUC: a distance attack (Hilprecht et al. 2019; Chen et al. 2020, GAN-leaks "full black-box"):
                  score = -distance to the closest synthetic row, members = training rows, non-members =
                  held-out rows (as many of each); 0.5 = the model does not tell them apart, 1 = it gives them away
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

GROUPS = ("fidelity", "correlation", "utility", "privacy")
NUMERIC = ("continuous", "integer", "datetime")
CARD_FORMAT = "gankit-eval"


# ---- a common numeric space -----------------------------------------------------------------------------------

def _numeric(series, col: dict) -> np.ndarray:
    import pandas as pd
    if col["type"] == "datetime":
        parsed = pd.to_datetime(series, errors="coerce", format="ISO8601") \
            if not pd.api.types.is_datetime64_any_dtype(series) else series
        out = np.full(len(series), np.nan)
        ok = parsed.notna().to_numpy()
        out[ok] = parsed[ok].astype("datetime64[ns]").astype("int64").to_numpy() / 1e9
        return out
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _labels(series) -> np.ndarray:
    """Discrete values as strings, missing as '<NA>' (one category)."""
    return np.array(["<NA>" if v is None or (not isinstance(v, str) and v != v) else str(v)
                     for v in series.tolist()], dtype=object)


def embed(frame, meta: dict) -> np.ndarray:
    """Rows [N, F]: numeric columns min-max scaled by the training range (missing -> 0, plus a flag column),
    one-hot categories (missing one of them). Distances in this space weigh every column alike."""
    parts = []
    for col in meta["columns"]:
        s = frame[col["name"]]
        if col["type"] in NUMERIC:
            v = _numeric(s, col)
            span = max(col["max"] - col["min"], 1e-12)
            missing = np.isnan(v)
            parts.append(np.where(missing, 0.0, (v - col["min"]) / span)[:, None])
            if col.get("missing") or missing.any():
                parts.append(missing[:, None].astype(np.float64))
        else:
            cats = ["<NA>" if c is None else str(c) for c in col["categories"]]
            labels = _labels(s)
            parts.append(np.stack([labels == c for c in cats], 1).astype(np.float64))
    return np.concatenate(parts, 1)


# ---- fidelity and correlations ---------------------------------------------------------------------------------

def tv_distance(real, synth) -> float:
    """1/2 sum_k |p_k - q_k| over the union of categories (missing one of them)."""
    a, b = _labels(real), _labels(synth)
    cats = sorted(set(a) | set(b))
    p = np.array([(a == c).mean() for c in cats])
    q = np.array([(b == c).mean() for c in cats])
    return float(0.5 * np.abs(p - q).sum())


def ks_statistic(real: np.ndarray, synth: np.ndarray) -> float:
    from scipy.stats import ks_2samp
    real, synth = real[~np.isnan(real)], synth[~np.isnan(synth)]
    if not len(real) or not len(synth):
        return 1.0 if len(real) != len(synth) else 0.0
    return float(ks_2samp(real, synth).statistic)


def fidelity(real, synth, meta: dict) -> dict[str, Any]:
    per_column, ks, tvd = {}, [], []
    for col in meta["columns"]:
        name = col["name"]
        miss = abs(float(real[name].isna().mean()) - float(synth[name].isna().mean()))
        if col["type"] in NUMERIC:
            value = ks_statistic(_numeric(real[name], col), _numeric(synth[name], col))
            per_column[name] = {"type": col["type"], "ks": value, "missing_rate_diff": miss}
            ks.append(value)
        else:
            value = tv_distance(real[name], synth[name])
            per_column[name] = {"type": col["type"], "tvd": value, "missing_rate_diff": miss}
            tvd.append(value)
    metrics = {}
    if ks:
        metrics["ks_mean"] = float(np.mean(ks))
    if tvd:
        metrics["tvd_mean"] = float(np.mean(tvd))
    return {"metrics": metrics, "columns": per_column}


def cramers_v(a, b) -> float:
    from scipy.stats.contingency import association
    import pandas as pd
    table = pd.crosstab(_labels(a), _labels(b)).to_numpy()
    if min(table.shape) < 2:
        return 0.0
    return float(association(table, method="cramer"))


def correlation(real, synth, meta: dict) -> dict[str, Any]:
    import pandas as pd
    num = [c for c in meta["columns"] if c["type"] in NUMERIC]
    cat = [c for c in meta["columns"] if c["type"] not in NUMERIC]
    metrics: dict[str, float] = {}
    pairs: dict[str, float] = {}
    if len(num) >= 2:
        rf = pd.DataFrame({c["name"]: _numeric(real[c["name"]], c) for c in num})
        sf = pd.DataFrame({c["name"]: _numeric(synth[c["name"]], c) for c in num})
        cr, cs = rf.corr().to_numpy(), sf.corr().to_numpy()
        iu = np.triu_indices(len(num), 1)
        diff = np.abs(np.nan_to_num(cr[iu]) - np.nan_to_num(cs[iu]))
        metrics["corr_diff_mean"] = float(diff.mean())
        pairs.update({f"{num[i]['name']}~{num[j]['name']}": float(d) for i, j, d in zip(*iu, diff)})
    if len(cat) >= 2:
        diffs = []
        for i in range(len(cat)):
            for j in range(i + 1, len(cat)):
                a, b = cat[i]["name"], cat[j]["name"]
                d = abs(cramers_v(real[a], real[b]) - cramers_v(synth[a], synth[b]))
                pairs[f"{a}~{b}"] = d
                diffs.append(d)
        metrics["cramers_v_diff_mean"] = float(np.mean(diffs))
    return {"metrics": metrics, "pairs": pairs}


# ---- ML utility --------------------------------------------------------------------------------------------------

def _design(frames: list, meta: dict, target: str):
    """Feature matrices of several frames (one encoding fitted on the first) for scikit-learn models."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    import pandas as pd
    feats = [c for c in meta["columns"] if c["name"] != target]
    num = [c["name"] for c in feats if c["type"] in NUMERIC]
    cat = [c["name"] for c in feats if c["type"] not in NUMERIC]
    def frame_of(f):
        out = pd.DataFrame({c["name"]: _numeric(f[c["name"]], c) for c in feats if c["type"] in NUMERIC})
        for c in cat:
            out[c] = _labels(f[c])
        return out
    transform = ColumnTransformer([("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
                                   ("cat", OneHotEncoder(handle_unknown="ignore"), cat)])
    first = transform.fit_transform(frame_of(frames[0]))
    return [first] + [transform.transform(frame_of(f)) for f in frames[1:]]


def utility(train_real, synth, test_real, meta: dict, target: str, seed: int = 0) -> dict[str, Any]:
    """TSTR vs TRTR scores on ``test_real`` for each model; classification when the target is discrete."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, f1_score, r2_score
    col = next(c for c in meta["columns"] if c["name"] == target)
    classify = col["type"] not in NUMERIC
    if classify:
        models = {"logistic": lambda: LogisticRegression(max_iter=2000),
                  "forest": lambda: RandomForestClassifier(n_estimators=100, random_state=seed)}
        y = lambda f: _labels(f[target])                                        # noqa: E731
        scores = {"accuracy": accuracy_score,
                  "f1": lambda a, b: f1_score(a, b, average="macro")}
    else:
        models = {"ridge": lambda: Ridge(), "forest": lambda: RandomForestRegressor(n_estimators=100,
                                                                                 random_state=seed)}
        y = lambda f: _numeric(f[target], col)                                  # noqa: E731
        scores = {"r2": r2_score}
    out: dict[str, Any] = {"task": "classification" if classify else "regression", "target": target}
    metrics: dict[str, float] = {}
    y_test = y(test_real)
    keep_test = ~(np.isnan(y_test) if not classify else np.zeros(len(y_test), bool))
    for source, train in (("real", train_real), ("synth", synth)):
        y_train = y(train)
        keep = ~(np.isnan(y_train) if not classify else np.zeros(len(y_train), bool))
        if classify and len(set(y_train[keep])) < 2:
            out[f"{source}_note"] = f"the {source} training rows hold one class only: no model to fit"
            continue
        X_train, X_test = _design([train[keep], test_real[keep_test]], meta, target)
        for model_name, make in models.items():
            model = make().fit(X_train, y_train[keep])
            pred = model.predict(X_test)
            for score_name, score in scores.items():
                metrics[f"{'tstr' if source == 'synth' else 'trtr'}_{model_name}_{score_name}"] = \
                    float(score(y_test[keep_test], pred))
    out["metrics"] = metrics
    return out


# ---- privacy audits ------------------------------------------------------------------------------------------------

def nearest(reference: np.ndarray, queries: np.ndarray, k: int = 1) -> np.ndarray:
    """Distances [N, k] from each query row to its k nearest reference rows (Euclidean)."""
    from sklearn.neighbors import NearestNeighbors
    nn_ = NearestNeighbors(n_neighbors=min(k, len(reference))).fit(reference)
    return nn_.kneighbors(queries)[0]


def membership_auc(train: np.ndarray, holdout: np.ndarray, synth: np.ndarray, seed: int = 0) -> float:
    """AUC of the distance attack: members (training rows) vs non-members (held-out rows), as many of each,
    scored by -distance to the closest synthetic row."""
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(seed)
    m = min(len(train), len(holdout))
    members = train[rng.choice(len(train), m, replace=False)]
    others = holdout[rng.choice(len(holdout), m, replace=False)]
    d = nearest(synth, np.concatenate([members, others]))[:, 0]
    labels = np.r_[np.ones(m), np.zeros(m)]
    return float(roc_auc_score(labels, -d))


def privacy(train, holdout, synth, meta: dict, seed: int = 0) -> dict[str, Any]:
    e_train, e_synth = embed(train, meta), embed(synth, meta)
    d = nearest(e_train, e_synth, k=2)                                            # [N_synth, 2]
    metrics = {"dcr_synth_median": float(np.median(d[:, 0])), "dcr_synth_p05": float(np.percentile(d[:, 0], 5)),
               "exact_copy_rate": float((d[:, 0] < 1e-9).mean())}
    if d.shape[1] > 1:
        metrics["nndr_median"] = float(np.median(d[:, 0] / np.maximum(d[:, 1], 1e-12)))
    if holdout is not None and len(holdout):
        e_hold = embed(holdout, meta)
        dh = nearest(e_train, e_hold)[:, 0]
        metrics["dcr_holdout_median"] = float(np.median(dh))
        metrics["dcr_holdout_p05"] = float(np.percentile(dh, 5))
        metrics["mia_auc"] = membership_auc(e_train, e_hold, e_synth, seed)
    return {"metrics": metrics}


# ---- the card --------------------------------------------------------------------------------------------------------

def table_card(synth, train, holdout, meta: dict, groups=GROUPS, target: str = "", seed: int = 0,
               generated: dict | None = None, reference: dict | None = None) -> dict[str, Any]:
    """Every requested group's numbers as a gankit evaluation card (``gankit compare`` reads it too)."""
    start = time.time()
    missing = [c["name"] for c in meta["columns"] if c["name"] not in synth.columns or c["name"] not in train.columns
               or (holdout is not None and c["name"] not in holdout.columns)]
    if missing:
        raise DataError(f"The tables lack column(s) {missing} the model was trained on.")
    metrics: dict[str, float] = {}
    details: dict[str, Any] = {}
    notes = []
    for group in groups:
        if group == "fidelity":
            res = fidelity(train, synth, meta)
            details["columns"] = res["columns"]
        elif group == "correlation":
            res = correlation(train, synth, meta)
            details["pairs"] = res["pairs"]
        elif group == "utility":
            if not target:
                notes.append("utility skipped: no target column (train with --set data.target=COLUMN)")
                continue
            if holdout is None or not len(holdout):
                notes.append("utility skipped: no held-out real rows (data.holdout > 0 or --ref TEST.csv)")
                continue
            res = utility(train, synth, holdout, meta, target, seed)
            details["utility"] = {k: v for k, v in res.items() if k != "metrics"}
        else:
            res = privacy(train, holdout, synth, meta, seed)
            if holdout is None or not len(holdout):
                notes.append("DCR of held-out rows and the membership attack need held-out rows")
        metrics.update(res["metrics"])
    protocol = {"kind": "table", "n_gen": len(synth), "n_ref": len(train),
                "n_holdout": 0 if holdout is None else len(holdout), "seed": seed, "target": target,
                "groups": list(groups), "device": "cpu", "wall_time_s": round(time.time() - start, 2),
                "generated": generated or {}, "reference": reference or {}}
    shared = {"n_gen": len(synth), "n_ref": len(train), "n_holdout": protocol["n_holdout"], "target": target,
              "reference": reference or {}}
    card = {"format": CARD_FORMAT, "metrics": metrics, "protocol": protocol, "details": details,
            "metric_protocols": {name: {"metric": name, **shared} for name in metrics}}
    if notes:
        card["note"] = "; ".join(notes) + "."
    return card


def parse_groups(metrics: Any) -> tuple[str, ...]:
    if metrics is None:
        return GROUPS
    names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    wrong = [m for m in names if m not in GROUPS]
    if wrong:
        raise ConfigError(f"Table models are scored by the groups {', '.join(GROUPS)}; {wrong} are not among "
                          f"them (image metrics such as fid do not apply to tables).")
    return tuple(names)


def evaluate_table_sampler(sampler: Any, request: Any) -> dict[str, Any]:
    """``gankit eval --ckpt RUN [--ref TEST.csv]`` for a rows sampler: the run's training rows (re-read with the
    run's data config and split), its held-out rows or the ``--ref`` table as the real test rows, ``--n``
    synthetic rows (default: as many as the training rows) drawn with ``--seed``."""
    from ..data import load_dataset
    from ..data.tables import read_table
    groups = parse_groups(request.metrics)
    if request.data is None:
        raise ConfigError("Evaluating a table model needs its training data config (run `gankit eval --ckpt`).")
    dataset = load_dataset(request.data, kinds=("table",))
    train, holdout = dataset.frame, dataset.holdout
    reference = {"train": request.data.spec, "holdout": f"{len(holdout)} rows held out of {request.data.spec}"}
    if request.ref:
        same = Path(request.ref).exists() and Path(request.data.spec).exists() and \
            Path(request.ref).resolve() == Path(request.data.spec).resolve()
        if not same and request.ref != request.data.spec:
            if not Path(request.ref).is_file():
                raise DataError(f"--ref {request.ref!r} is not a table file (.csv, .tsv, .parquet).")
            holdout = read_table(request.ref)
            reference["holdout"] = str(request.ref)
    n = request.n or len(train)
    synth = sampler.draw(n=n, seed=request.seed)
    target = request.options.get("target") or sampler.meta.get("target", "")
    return table_card(synth, train, holdout, sampler.meta, groups, target, request.seed,
                      generated={"n": n, "seed": request.seed}, reference=reference)


__all__ = ["table_card", "fidelity", "correlation", "utility", "privacy", "membership_auc", "embed", "nearest",
           "tv_distance", "ks_statistic", "cramers_v", "evaluate_table_sampler", "GROUPS"]

