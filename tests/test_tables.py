"""Tables and CTGAN: type inference, mode-specific normalisation, the conditional vector, dtype round trips, the
rows sampler, the evaluation card's audits on known cases, and seeded reproducibility."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from gankit.config import DataConfig
from gankit.data import load_dataset
from gankit.data.tables import (TableOptions, decode, denormalise, fit_encode, fit_mixture, infer_types,
                                log_frequency_probs, mode_posterior, normalise, read_table)
from gankit.engine import build, resolve
from gankit.errors import ConfigError, DataError
from gankit.metrics.tables import correlation, cramers_v, fidelity, membership_auc, privacy, tv_distance
from gankit.recipes.tabular import CondVector

TINY = {"G.hidden": [16, 16], "D.hidden": [16], "z_dim": 8, "batch_size": 20, "kimg": 0.04, "tick_kimg": 0.02,
        "snapshot_kimg": 0.04, "snapshot_n": 10, "data.max_modes": 3, "data.target": "label"}


def mixed_frame(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(n) < 0.5, rng.normal(-3, 0.5, n), rng.normal(4, 1.0, n))
    count = rng.integers(0, 500, n).astype(float)
    count[rng.random(n) < 0.1] = np.nan                      # an int column with gaps: pandas reads float64
    color = rng.choice(["red", "green", "blue"], n).astype(object)
    color[rng.random(n) < 0.1] = None
    days = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    return pd.DataFrame({"x": x, "count": count, "color": color, "flag": rng.random(n) < 0.3,
                         "when": days.strftime("%Y-%m-%d"), "label": rng.choice(["a", "b"], n)})


@pytest.fixture(scope="module")
def table_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("tables") / "mixed.csv"
    mixed_frame().to_csv(path, index=False)
    return path


def test_types_are_inferred_and_overridable():
    frame = mixed_frame()
    types = infer_types(frame, TableOptions())
    assert types == {"x": "continuous", "count": "integer", "color": "categorical", "flag": "boolean",
                     "when": "datetime", "label": "categorical"}
    small = pd.DataFrame({"stars": [1, 2, 3, 4, 5] * 4, "price": np.arange(20) * 1.5})
    assert infer_types(small, TableOptions())["stars"] == "categorical"          # few integer values
    assert infer_types(small, TableOptions(continuous=["stars"]))["stars"] == "integer"
    assert infer_types(small, TableOptions(discrete=["price"]))["price"] == "categorical"
    with pytest.raises(DataError, match="stars, price"):
        infer_types(small, TableOptions(discrete=["nope"]))


def test_json_records_and_tsv_tables_are_read(tmp_path):
    frame = mixed_frame(10)
    frame.to_json(tmp_path / "t.json", orient="records")
    frame.to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    assert list(read_table(tmp_path / "t.json").columns) == list(frame.columns)
    assert read_table(tmp_path / "t.tsv").shape == frame.shape
    with pytest.raises(DataError, match="Cannot read table"):
        (tmp_path / "bad.csv").write_text('a,b\n"1,2\n')
        read_table(tmp_path / "bad.csv")


def test_mode_specific_normalisation_inverts_within_the_clip_range():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(-5, 0.3, 100), rng.normal(5, 1.0, 100)])
    mix = fit_mixture(values, 3, seed=0)
    means, stds = np.array(mix["means"]), np.array(mix["stds"])
    assert len(means) >= 2 and sorted(np.round(means).astype(int).tolist())[::len(means) - 1] == [-5, 5]
    mode = mode_posterior(mix, values).argmax(1)
    alpha = normalise(values, means, stds, mode)
    inside = np.abs(alpha) < 0.99
    assert inside.mean() > 0.95
    np.testing.assert_allclose(denormalise(alpha, means, stds, mode)[inside], values[inside], rtol=0, atol=1e-9)
    # The constant: a value 2 sigma above its mode's mean is alpha = 2 / 4 (CTGAN's (c - mu) / (4 sigma)).
    k = int(np.argmax(means))
    assert normalise(np.array([means[k] + 2 * stds[k]]), means, stds, np.array([k]))[0] == pytest.approx(0.5)
    assert normalise(np.array([means[k] + 100 * stds[k]]), means, stds, np.array([k]))[0] == pytest.approx(0.99)


def test_encoding_decodes_to_the_same_table_dtypes_and_labels(table_csv):
    real = read_table(table_csv)
    enc = fit_encode(real, TableOptions(max_modes=3), seed=0, name="mixed")
    back = decode(enc.x, enc.meta)
    assert list(back.dtypes.astype(str)) == list(real.dtypes.astype(str))
    for col in ("color", "flag", "when", "label"):
        assert back[col].tolist() == real[col].tolist() or \
            back[col].fillna("<NA>").tolist() == real[col].fillna("<NA>").tolist()
    assert back["count"].isna().tolist() == real["count"].isna().tolist()
    ok = real["count"].notna()
    np.testing.assert_allclose(back["count"][ok], real["count"][ok], atol=0.5)      # integers, rounded
    np.testing.assert_allclose(back["x"], real["x"], rtol=0, atol=2e-6 * np.abs(real["x"]).max())
    json.dumps(enc.meta)                                    # plain data: goes into every checkpoint as is


def test_parquet_keeps_datetime_and_category_dtypes(tmp_path):
    frame = pd.DataFrame({"t": pd.date_range("2021-01-01", periods=30, freq="D"),
                          "c": pd.Categorical(["x", "y", "z"] * 10), "v": np.linspace(0, 1, 30)})
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    enc = fit_encode(read_table(path), TableOptions(max_modes=2), seed=0, name="t")
    back = decode(enc.x, enc.meta)
    assert str(back["t"].dtype).startswith("datetime64") and str(back["c"].dtype) == "category"
    assert list(back["c"].cat.categories) == ["x", "y", "z"]
    assert (back["t"] - frame["t"]).abs().max() < pd.Timedelta(seconds=1)


def test_training_by_sampling_draws_categories_by_log_frequency(tmp_path):
    counts = [2, 20, 200, 2000]
    frame = pd.DataFrame({"c": np.repeat(["a", "b", "c", "d"], counts),
                          "k": np.tile(["u", "v"], sum(counts) // 2)})
    path = tmp_path / "freq.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(DataConfig(spec=str(path), options={"holdout": 0.0}), kinds=("table",))
    batch = ds.draw(40_000, torch.Generator().manual_seed(0))
    cond = batch["cond"]                                                              # [N, 4 + 2]
    chosen_c = cond[:, :4].sum(1) == 1
    assert abs(chosen_c.float().mean().item() - 0.5) < 0.01                           # columns uniformly
    freq = cond[chosen_c, :4].mean(0).double()
    expected = np.log1p(counts) / np.log1p(counts).sum()
    np.testing.assert_allclose(freq.numpy(), expected, atol=0.01)
    assert not np.allclose(expected, np.array(counts) / sum(counts), atol=0.05)     # not the plain frequency
    # Each drawn row holds the category its vector names.
    start = ds.meta["cond"][0]["x_start"]
    assert torch.equal(batch["x"][chosen_c, start:start + 4], cond[chosen_c, :4])
    # The same law from uniforms (the recipe's fake conditions), and the data's frequency for sampling.
    cv = CondVector(ds.meta)
    drawn = cv.from_uniform(torch.rand(40_000, 2, generator=torch.Generator().manual_seed(1)), "log")
    np.testing.assert_allclose(drawn[drawn[:, :4].sum(1) == 1, :4].mean(0).numpy(), expected, atol=0.01)
    emp = cv.from_uniform(torch.rand(40_000, 2, generator=torch.Generator().manual_seed(2)), "empirical")
    np.testing.assert_allclose(emp[emp[:, :4].sum(1) == 1, :4].mean(0).numpy(), np.array(counts) / sum(counts),
                               atol=0.01)
    np.testing.assert_allclose(log_frequency_probs(torch.tensor([0.0, 1.0])).numpy(), [0, 1])


def test_condition_loss_is_the_cross_entropy_of_the_chosen_column():
    meta = {"cond": [{"column": 0, "x_start": 0, "start": 0, "size": 3},
                     {"column": 1, "x_start": 3, "start": 3, "size": 2}], "cond_dim": 5,
            "columns": [{"name": "a", "counts": [1, 1, 1]}, {"name": "b", "counts": [1, 1]}]}
    cv = CondVector(meta)
    raw = torch.tensor([[2.0, 0.0, 0.0, 5.0, -5.0], [0.0, 0.0, 0.0, 1.0, 3.0]])
    cond = torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 0, 0, 1.0]])                # row 0: a=0; row 1: b=1
    ce0 = -torch.log_softmax(raw[0, :3], 0)[0]
    ce1 = -torch.log_softmax(raw[1, 3:], 0)[1]
    assert cv.loss(raw, cond).item() == pytest.approx(((ce0 + ce1) / 2).item(), rel=1e-6)


def test_ctgan_trains_samples_and_round_trips_dtypes_through_the_cli(table_csv, tmp_path):
    from gankit.cli import main
    runs = tmp_path / "runs"
    args = ["train", "--preset", "ctgan", "--data", str(table_csv), "--out", str(runs), "--quiet"]
    for k, v in TINY.items():
        args += ["--set", f"{k}={json.dumps(v) if isinstance(v, list) else v}"]
    main(args)
    run = next(runs.iterdir())
    assert sorted(p.name for p in run.glob("samples-*.csv"))                       # the table preview artefact
    synth_path = tmp_path / "synth.csv"
    main(["sample", "--ckpt", str(run), "--n", "40", "--out", str(synth_path)])
    real, synth = read_table(table_csv), read_table(synth_path)
    assert list(synth.columns) == list(real.columns) and len(synth) == 40
    assert dict(synth.dtypes.astype(str)) == dict(real.dtypes.astype(str))
    for col in ("color", "flag", "label"):
        assert set(synth[col].dropna()) <= set(real[col].dropna())
    assert pd.to_datetime(synth["when"]).between("2020-01-01", "2020-12-31").all()
    cond_path = tmp_path / "red.csv"
    main(["sample", "--ckpt", str(run), "--n", "10", "--out", str(cond_path), "--condition", "color=red"])
    assert set(read_table(cond_path)["color"]) == {"red"}
    with pytest.raises(SystemExit) as e:
        main(["sample", "--ckpt", str(run), "--n", "10", "--out", str(tmp_path / "x.csv"), "--condition", "x=1"])
    assert e.value.code == 2
    with pytest.raises(SystemExit):                                          # never overwrites a user's file
        main(["sample", "--ckpt", str(run), "--n", "5", "--out", str(synth_path)])
    card_path = tmp_path / "card.json"
    main(["eval", "--ckpt", str(run), "--out", str(card_path)])
    card = json.loads(card_path.read_text())
    for key in ("ks_mean", "tvd_mean", "corr_diff_mean", "tstr_forest_accuracy", "trtr_forest_accuracy",
                "dcr_synth_median", "dcr_holdout_median", "mia_auc", "exact_copy_rate", "nndr_median"):
        assert key in card["metrics"], key
    assert "epsilon" not in card                                                   # no privacy: no epsilon


def test_seeded_runs_and_samples_are_reproducible(table_csv):
    over = {**TINY, "data.spec": str(table_csv)}
    params = []
    for _ in range(2):
        trainer, _ = build(resolve("ctgan", overrides=over), torch.device("cpu"))
        for _ in range(2):
            trainer.train_step()
        params.append(torch.cat([p.detach().flatten() for p in trainer.recipe.parameters()]))
    assert torch.equal(params[0], params[1])
    sampler = trainer.recipe.sampler(trainer.recipe.nets.eval())
    a, b, c = sampler.draw(n=30, seed=3), sampler.draw(n=30, seed=3), sampler.draw(n=30, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    one = sampler.draw(seeds=[3])
    assert len(one) == 1


def test_ctgan_config_mistakes_are_named(table_csv):
    with pytest.raises(ConfigError, match="multiple of pac"):
        build(resolve("ctgan", overrides={**TINY, "data.spec": str(table_csv), "batch_size": 15}))
    with pytest.raises(DataError, match="'nope' is not a column"):
        build(resolve("ctgan", overrides={**TINY, "data.spec": str(table_csv), "data.target": "nope"}))
    with pytest.raises(ConfigError, match="score images"):
        resolve("ctgan", overrides={**TINY, "data.spec": str(table_csv), "metrics": ["fid"]})


# ---- the card's audits on known cases -------------------------------------------------------------------------

def _meta_of(frame):
    return fit_encode(frame, TableOptions(max_modes=2), seed=0, name="t").meta


def test_dcr_and_membership_attack_on_copies_and_independent_draws():
    train, holdout, fresh = mixed_frame(300, 0), mixed_frame(300, 1), mixed_frame(300, 2)
    meta = _meta_of(train)
    copied = privacy(train, holdout, train.sample(frac=1.0, random_state=0), meta)["metrics"]
    assert copied["dcr_synth_median"] == 0 and copied["exact_copy_rate"] == 1.0
    assert copied["mia_auc"] > 0.95
    independent = privacy(train, holdout, fresh, meta)["metrics"]
    assert independent["exact_copy_rate"] == 0
    assert abs(independent["mia_auc"] - 0.5) < 0.08
    assert independent["dcr_synth_median"] == pytest.approx(independent["dcr_holdout_median"], rel=0.25)
    half = pd.concat([train.iloc[:150], fresh.iloc[:150]])                # half copies: in between
    assert 0.6 < privacy(train, holdout, half, meta)["metrics"]["mia_auc"] < copied["mia_auc"]


def test_membership_auc_is_exact_on_separated_sets():
    train = np.zeros((10, 1))
    holdout = np.full((10, 1), 5.0)
    assert membership_auc(train, holdout, synth=np.zeros((3, 1))) == 1.0          # synthetic = members
    assert membership_auc(train, holdout, synth=np.full((3, 1), 5.0)) == 0.0      # synthetic = non-members


def test_fidelity_and_correlation_numbers_on_known_cases():
    a = pd.Series(["x"] * 50 + ["y"] * 50)
    assert tv_distance(a, a) == 0 and tv_distance(a, pd.Series(["z"] * 10)) == 1.0
    assert tv_distance(a, pd.Series(["x"] * 75 + ["y"] * 25)) == pytest.approx(0.25)
    assert cramers_v(a, a) == pytest.approx(1.0)
    frame = mixed_frame(200, 0)
    meta = _meta_of(frame)
    same = fidelity(frame, frame, meta)["metrics"]
    assert same["ks_mean"] == 0 and same["tvd_mean"] == 0
    shifted = frame.assign(x=frame["x"] + 100)
    assert fidelity(frame, shifted, meta)["columns"]["x"]["ks"] == 1.0
    assert correlation(frame, frame, meta)["metrics"]["corr_diff_mean"] == pytest.approx(0, abs=1e-12)
    flipped = frame.assign(count=-frame["count"])                         # r(x, count) etc. change sign
    assert correlation(frame, flipped, meta)["metrics"]["corr_diff_mean"] > 0


def test_ml_utility_on_known_cases():
    from gankit.metrics.tables import utility
    rng = np.random.default_rng(0)
    def linear(n, seed):
        r = np.random.default_rng(seed)
        a, b = r.normal(size=n), r.normal(size=n)
        return pd.DataFrame({"a": a, "b": b, "y": 3 * a - 2 * b + 0.01 * r.normal(size=n),
                             "cls": np.where(a + b > 0, "pos", "neg")})
    train, test = linear(300, 1), linear(200, 2)
    meta = _meta_of(train)
    reg = utility(train, train, test, meta, "y")["metrics"]
    assert reg["trtr_ridge_r2"] > 0.99 and reg["tstr_ridge_r2"] == reg["trtr_ridge_r2"]    # synthetic = real
    noise = train.assign(y=rng.permutation(train["y"].to_numpy()))                            # y unrelated
    assert utility(train, noise, test, meta, "y")["metrics"]["tstr_ridge_r2"] < 0.1
    cls = utility(train, train.assign(cls=rng.permutation(train["cls"].to_numpy())), test, meta, "cls")["metrics"]
    assert cls["trtr_logistic_accuracy"] > 0.9 and abs(cls["tstr_logistic_accuracy"] - 0.5) < 0.15
