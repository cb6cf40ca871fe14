"""DP-SGD through Opacus (engine/privacy.py) on the ctgan recipe: epsilon against Google's dp-accounting, the
noise calibration, exact resume with the accountant, the over-budget refusal, what per-sample gradients refuse,
and epsilon in stats, checkpoints, `gankit info --json` and evaluation cards."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from gankit.checkpoint import load_checkpoint
from gankit.engine import build, resolve, train
from gankit.errors import CheckpointError, ConfigError
from gankit.losses import adversarial_losses
from gankit.recipes.ctgan import per_row_mean
from test_tables import mixed_frame

DP = {"G.hidden": [16], "D.hidden": [16], "z_dim": 8, "batch_size": 10, "kimg": 0.1, "tick_kimg": 0.01,
      "snapshot_kimg": 0.05, "snapshot_n": 10, "data.max_modes": 2, "data.target": "label",
      "privacy.epsilon": 3.0, "privacy.delta": 1e-3}


@pytest.fixture(scope="module")
def dp_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("dp") / "rows.csv"
    mixed_frame(80, 5).to_csv(path, index=False)                 # 64 training rows after the 20% holdout
    return path


def _dp_accounting_epsilon(sigma: float, q: float, steps: int, delta: float) -> float:
    from dp_accounting import dp_event, rdp
    accountant = rdp.RdpAccountant()
    accountant.compose(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps)
    return accountant.get_epsilon(delta)


def test_reported_epsilon_agrees_with_dp_accounting_and_falls_with_noise():
    from opacus.accountants import RDPAccountant
    for sigma, q, steps, delta in ((1.1, 0.01, 1000, 1e-5), (2.0, 0.2, 50, 1e-3), (0.8, 0.05, 300, 1e-5)):
        acc = RDPAccountant()
        for _ in range(steps):
            acc.step(noise_multiplier=sigma, sample_rate=q)
        ours, theirs = acc.get_epsilon(delta), _dp_accounting_epsilon(sigma, q, steps, delta)
        assert ours == pytest.approx(theirs, rel=0.03), (sigma, q, steps, ours, theirs)
    eps = []
    for sigma in (0.8, 1.2, 2.0, 4.0):
        acc = RDPAccountant()
        acc.history = [(sigma, 0.05, 200)]
        eps.append(acc.get_epsilon(1e-5))
    assert eps == sorted(eps, reverse=True) and eps[0] > 2 * eps[-1]


def test_noise_is_calibrated_to_the_run_and_reaches_epsilon_at_its_end(dp_csv, tmp_path):
    cfg = resolve("ctgan-dp", overrides={**DP, "data.spec": str(dp_csv)})
    trainer, dataset = build(cfg, torch.device("cpu"))
    privacy = next(s for s in trainer.strategies if s.name == "privacy")
    n = len(dataset)
    assert n == 64 and privacy.sample_rate == pytest.approx(10 / 64)
    assert privacy.planned_steps == 10                             # 100 rows / batch 10, one D step each
    theirs = _dp_accounting_epsilon(privacy.noise_multiplier, 10 / 64, 10, 1e-3)
    assert 2.8 < theirs <= 3.0 * 1.03                             # the calibrated sigma spends the budget
    from opacus.accountants.utils import get_noise_multiplier
    looser = get_noise_multiplier(target_epsilon=8.0, target_delta=1e-3, sample_rate=10 / 64, steps=10)
    assert looser < privacy.noise_multiplier == pytest.approx(
        get_noise_multiplier(target_epsilon=3.0, target_delta=1e-3, sample_rate=10 / 64, steps=10))


def test_noise_with_a_histogram_release_composes_to_epsilon(dp_csv):
    from dp_accounting import dp_event, rdp
    cfg = resolve("ctgan-dp", overrides={**DP, "data.spec": str(dp_csv), "privacy.count_noise": 5.0})
    trainer, _ = build(cfg, torch.device("cpu"))
    privacy = next(s for s in trainer.strategies if s.name == "privacy")
    accountant = rdp.RdpAccountant()
    accountant.compose(dp_event.GaussianDpEvent(5.0), 1)                 # the counts, once, at rate 1
    accountant.compose(dp_event.PoissonSampledDpEvent(10 / 64, dp_event.GaussianDpEvent(privacy.noise_multiplier)),
                       10)
    assert 2.8 < accountant.get_epsilon(1e-3) <= 3.0 * 1.03
    from opacus.accountants.utils import get_noise_multiplier
    alone = get_noise_multiplier(target_epsilon=3.0, target_delta=1e-3, sample_rate=10 / 64, steps=10)
    assert privacy.noise_multiplier > alone                    # part of the budget went to the counts
    # The recipe draws its conditions from the noisy counts (sqrt(3) x 5 noise on each: three discrete columns).
    counts = trainer.recipe.meta["columns"][2]["counts"]
    assert counts == privacy.statistics["counts/color"].clamp(min=0).tolist()


def test_dp_run_logs_epsilon_resumes_exactly_and_refuses_to_overspend(dp_csv, tmp_path, capsys):
    """With the category counts released with noise too (privacy.count_noise), which resume must not redraw."""
    from gankit.cli import main
    cfg = resolve("ctgan-dp", overrides={**DP, "data.spec": str(dp_csv), "privacy.count_noise": 5.0})
    run = train(cfg, out=tmp_path / "runs", progress=False)
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    eps = [s["privacy/epsilon"] for s in stats]
    assert eps == sorted(eps) and 0 < eps[0] < eps[-1] <= 3.0 * 1.01
    final = load_checkpoint(run / "latest.pt")
    assert final["summary"]["epsilon"] == pytest.approx(eps[-1])
    history = final["privacy"]["accountant"]["history"]
    assert history[0] == (5.0, 1.0, 1) and history[1][1:] == (10 / 64, 10)       # the release, then 10 steps
    released = final["privacy"]["statistics"]["counts/color"]
    saved = next(c for c in final["data_info"]["extras"]["table"]["columns"] if c["name"] == "color")["counts"]
    assert saved == released.clamp(min=0).tolist() and saved != [round(v) for v in saved]   # noisy, and used
    assert not any("_module" in k for k in final["nets"])          # the Opacus wrapper never reaches a checkpoint

    # Resume from the mid-run snapshot (kimg 0.05) to the planned end: the same weights, bit for bit.
    mid = next(p for p in run.glob("ckpt-*.pt") if load_checkpoint(p)["nimg"] == 50)
    shutil.copy(run / "latest.pt", tmp_path / "final.pt")
    resumed = train(cfg, resume=mid, progress=False, resume_overrides=set())
    again = load_checkpoint(resumed / "latest.pt")
    for k, v in final["nets"].items():
        assert torch.equal(v, again["nets"][k]), k
    assert again["privacy"]["accountant"]["history"] == final["privacy"]["accountant"]["history"]

    # Asking for more kimg than the budget was planned for is refused, not overspent.
    assert again["data_info"]["extras"]["table"] == final["data_info"]["extras"]["table"]
    longer = resolve("ctgan-dp", overrides={**DP, "data.spec": str(dp_csv), "kimg": 0.2, "privacy.count_noise": 5.0})
    with pytest.raises(CheckpointError, match="overspend"):
        train(longer, resume=run / "latest.pt", progress=False, resume_overrides={"kimg"})

    # Privacy settings cannot change on resume (a routed key is judged by what it changes).
    looser = resolve("ctgan-dp", overrides={**DP, "data.spec": str(dp_csv), "privacy.count_noise": 5.0,
                                            "privacy.epsilon": 10.0})
    with pytest.raises(ConfigError, match="privacy.epsilon when resuming: it changes strategy"):
        train(looser, resume=run / "latest.pt", progress=False, resume_overrides={"privacy.epsilon"})

    # epsilon is a field of `gankit info --json` and of the evaluation card.
    capsys.readouterr()
    main(["info", "--json", str(run / "latest.pt")])
    info = json.loads(capsys.readouterr().out)
    assert info["epsilon"] == pytest.approx(eps[-1]) and info["delta"] == 1e-3
    card = tmp_path / "card.json"
    main(["eval", "--ckpt", str(run), "--metrics", "fidelity,privacy", "--out", str(card)])
    card = json.loads(card.read_text())
    assert card["epsilon"] == pytest.approx(eps[-1]) and "counts/color" in card["privacy"]["covers"]
    assert "mia_auc" in card["metrics"]


def test_what_per_sample_gradients_cannot_do_is_refused(dp_csv):
    base = {**DP, "data.spec": str(dp_csv)}
    with pytest.raises(ConfigError, match="pac=10"):
        build(resolve("ctgan", overrides={**base, "batch_size": 10}))
    with pytest.raises(ConfigError, match="gradient penalty"):
        build(resolve("ctgan", overrides={**base, "pac": 1}))
    with pytest.raises(ConfigError, match="below 1 / N"):
        build(resolve("ctgan-dp", overrides={**base, "privacy.delta": 0.1}))
    with pytest.raises(ConfigError, match="smaller than N"):
        build(resolve("ctgan-dp", overrides={**base, "batch_size": 64}))
    with pytest.raises(ConfigError, match="per-sample"):
        build(resolve("gan", overrides={"data.spec": "ring8", "privacy.epsilon": 1.0, "privacy.delta": 1e-6,
                                        "batch_size": 8}))
    with pytest.raises(ConfigError, match="epsilon, delta, max_grad_norm, accountant"):
        resolve("ctgan-dp", overrides={**base, "privacy.epsilonn": 1.0})


@pytest.mark.parametrize("loss", ["nonsaturating", "wasserstein", "hinge", "lsgan"])
def test_dp_discriminator_loss_is_a_plain_mean_over_rows(loss):
    """per_row_mean has the gradient of (sum_i a(r_i) + sum_j b(f_j)) / (n_r + n_f), each row's own term."""
    adv = adversarial_losses.get(loss)
    real = torch.randn(5, requires_grad=True)
    fake = torch.randn(7, requires_grad=True)
    per_row_mean(adv, real, fake).backward()
    expected_real = torch.zeros(5)
    expected_fake = torch.zeros(7)
    c = torch.zeros(1)
    for i in range(5):               # a(r_i) up to a constant: adv.d on the one row against a fixed score
        r = real.detach()[i:i + 1].clone().requires_grad_(True)
        adv.d(r, c).backward()
        expected_real[i] = r.grad[0] / 12
    for j in range(7):
        f = fake.detach()[j:j + 1].clone().requires_grad_(True)
        adv.d(c, f).backward()
        expected_fake[j] = f.grad[0] / 12
    torch.testing.assert_close(real.grad, expected_real)
    torch.testing.assert_close(fake.grad, expected_fake)
    # Not the two-mean form, whose real rows weigh 1 / n_r: that weight moves with every row added or removed.
    real2 = real.detach().clone().requires_grad_(True)
    adv.d(real2, fake.detach()).backward()
    assert not torch.allclose(real2.grad, expected_real)


@pytest.mark.parametrize("C", [0.05, 100.0])
def test_opacus_clips_each_rows_own_gradient_of_the_per_row_loss(C):
    """GradSampleModule + DPOptimizer on per_row_mean: the update is sum_i clip(grad l_i, C) / E, l_i the row's own
    term (Opacus' mean reduction multiplies by the forward's n, cancelling per_row_mean's 1 / n)."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer
    from gankit.nets.ctgan import CTGANDiscriminator
    torch.manual_seed(0)
    D = CTGANDiscriminator(in_dim=3, hidden=(4,), dropout=0.0)
    rows = torch.randn(10, 3)                                          # 4 real, 6 fake
    adv = adversarial_losses.get("nonsaturating")
    E = 20
    manual = [torch.zeros_like(p) for p in D.parameters()]
    zero = torch.zeros(1)
    for i in range(10):
        D.zero_grad()
        s = D(rows[i:i + 1])
        (adv.d(s, zero) if i < 4 else adv.d(zero, s)).backward()
        grads = [p.grad.clone() for p in D.parameters()]
        norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
        factor = min(1.0, C / (norm.item() + 1e-6))
        assert (factor < 1) == (C < 1)                  # every row clipped, or none (then the weights show)
        manual = [m + factor * g for m, g in zip(manual, grads)]
    gsm = GradSampleModule(D, batch_first=True, loss_reduction="mean")
    opt = DPOptimizer(torch.optim.SGD(D.parameters(), lr=1.0), noise_multiplier=0.0, max_grad_norm=C,
                      expected_batch_size=E, loss_reduction="mean")
    opt.zero_grad()
    scores = gsm(rows)
    per_row_mean(adv, scores[:4], scores[4:]).backward()
    opt.pre_step()
    for p, m in zip(D.parameters(), manual):
        torch.testing.assert_close(p.grad, m / E, rtol=1e-4, atol=1e-7)
