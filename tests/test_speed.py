"""Issue 16's speed options and step optimisations: each one changes no numbers where it claims exactness.

- ``reuse_fakes`` (gan recipe): one G forward per step, the PyTorch DCGAN example's loop; checked against that
  loop written out by hand on copies of the same networks, batches and latents.
- ``joint_d_forward``: one D forward on [real; fake]; the D loss and D's gradients equal the two-forward path to
  float tolerance; refused where D couples rows (batch norm) or counts forwards (spectral norm).
- the step's cached learning rates / trainable flags: a run equals one through the uncached path bit for bit.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from gankit.engine import resolve
from gankit.data.base import DataInfo, MemoryDataset
from gankit.engine import build
from gankit.errors import ConfigError
from gankit.recipes.base import StepContext

RES, N, BATCH = 28, 64, 8


def _data(channels: int = 1) -> MemoryDataset:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(N, channels, RES, RES, generator=g) * 2 - 1
    return MemoryDataset({"image": img}, DataInfo(name="t", kind="image", size=N, channels=channels, resolution=RES))


def _trainer(**overrides):
    cfg = resolve("dcgan", overrides={"batch_size": BATCH, "data.resolution": RES, "G.ngf": 8, "D.ndf": 8,
                                      "device": "cpu", **overrides})
    torch.manual_seed(0)
    trainer, _ = build(cfg, torch.device("cpu"), dataset=_data())
    return trainer


class _Recorder:
    """Wraps the trainer's batch stream and keeps every batch it hands out."""

    def __init__(self, stream):
        self.stream, self.batches = stream, []

    def __next__(self):
        batch = next(self.stream)
        self.batches.append({k: v.clone() for k, v in batch.items()})
        return batch


def test_reuse_fakes_is_the_pytorch_dcgan_example_loop():
    trainer = _trainer(**{"opts.reuse_fakes": True})
    G0, D0 = copy.deepcopy(trainer.recipe.nets["G"]), copy.deepcopy(trainer.recipe.nets["D"])
    rec = _Recorder(trainer.stream)
    trainer.stream = rec
    torch.manual_seed(123)
    for _ in range(3):
        trainer.train_step(measure_grad_norm=False)
    # The same three steps, written as the PyTorch DCGAN example (examples/dcgan/main.py) writes them.
    G, D = G0, D0
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    torch.manual_seed(123)
    for batch in rec.batches:
        real = batch["image"]
        ones, zeros = torch.ones(len(real)), torch.zeros(len(real))
        D.zero_grad()
        fake = G(torch.randn(len(real), G.z_dim))
        err_d = (F.binary_cross_entropy_with_logits(D(real), ones)
                 + F.binary_cross_entropy_with_logits(D(fake.detach()), zeros))
        err_d.backward()
        opt_d.step()
        G.zero_grad()
        F.binary_cross_entropy_with_logits(D(fake), ones).backward()
        opt_g.step()
    assert len(rec.batches) == 3
    for name, ref in (("G", G), ("D", D)):
        for (key, ours), theirs in zip(trainer.recipe.nets[name].state_dict().items(), ref.state_dict().values()):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6, msg=f"{name}.{key}")
    assert not trainer.recipe._kept_fakes        # the G phase took the kept fakes (no graph left behind)


def test_reuse_fakes_off_draws_fresh_latents_for_g():
    """Without the option the two loops differ (G sees fakes from fresh latents): the test above can fail."""
    on, off = _trainer(**{"opts.reuse_fakes": True}), _trainer()
    torch.manual_seed(5)
    on.train_step(measure_grad_norm=False)
    torch.manual_seed(5)
    off.train_step(measure_grad_norm=False)
    # D's weights are updated alike (its batch-norm running means differ: the G phase scores other fakes).
    d_on, d_off = dict(on.recipe.nets["D"].named_parameters()), dict(off.recipe.nets["D"].named_parameters())
    assert all(torch.equal(d_on[k], d_off[k]) for k in d_on)
    g_on, g_off = dict(on.recipe.nets["G"].named_parameters()), dict(off.recipe.nets["G"].named_parameters())
    assert any(not torch.equal(g_on[k], g_off[k]) for k in g_on)


@pytest.mark.parametrize("augment", ["none", "diffaug"])
def test_joint_d_forward_matches_two_forwards(augment):
    over = {"D.norm": "none", "opts.augment": augment}
    two, one = _trainer(**over), _trainer(**over, **{"opts.joint_d_forward": True})
    one.recipe.load_state_dict(two.recipe.state_dict())
    batch = next(two.stream)
    ctx = StepContext(step=0, nimg=BATCH, total_nimg=1000, phase="D")
    results = []
    for trainer in (two, one):
        trainer._set_trainable(("D",))
        torch.manual_seed(7)
        out = trainer.recipe.d_loss(batch, ctx)
        out["loss"].backward()
        results.append((out, [p.grad.clone() for p in trainer.recipe.nets["D"].parameters()]))
    (out2, grads2), (out1, grads1) = results
    for key in ("loss", "D/real", "D/fake"):
        torch.testing.assert_close(out1[key], out2[key], rtol=1e-5, atol=1e-6)
    for g1, g2 in zip(grads1, grads2):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)
    assert max(g.abs().max() for g in grads2) > 0


@pytest.mark.parametrize("norm,named", [("batch", "batch norm"), ("spectral", "spectral norm")])
def test_joint_d_forward_refused_where_d_couples_rows(norm, named):
    with pytest.raises(ConfigError, match=named):
        _trainer(**{"D.norm": norm, "opts.joint_d_forward": True})


def test_batch_norm_d_would_change_the_numbers():
    """Why the refusal: with batch norm in D the joint forward's statistics mix real and fake rows."""
    trainer = _trainer()
    D = trainer.recipe.nets["D"]
    real, fake = torch.randn(BATCH, 1, RES, RES), torch.randn(BATCH, 1, RES, RES) + 1
    joint = D(torch.cat([real, fake]))
    assert not torch.allclose(joint[:BATCH], D(real), atol=1e-4)


def _plain_set_trainable(self, names):
    for name, net in self.recipe.nets.items():
        net.requires_grad_(name in names)


def _plain_set_lr(self):
    from gankit.optim import set_learning_rates
    progress = self.context().progress
    for name, opt in self.optimizers.items():
        schedule = self.specs[name].schedule
        set_learning_rates(opt, self.lr_scale * (schedule(progress) if schedule else 1.0))


def test_cached_step_bookkeeping_equals_the_plain_step(monkeypatch):
    """Trainable flags set once, learning rates set when their factor changes, grads dropped without torch's
    zero_grad, logged values stacked as they are: the same weights, optimiser states and flags as before."""
    def run(plain: bool):
        trainer = _trainer(**{"ema_kimg": 0.1, "opts.r1_gamma": 1.0, "opts.r1_interval": 2})
        if plain:
            monkeypatch.setattr(type(trainer), "_set_trainable", _plain_set_trainable)
            monkeypatch.setattr(type(trainer), "set_lr", _plain_set_lr)
            monkeypatch.setattr(type(trainer), "_zero_grad", staticmethod(lambda o: o.zero_grad(set_to_none=True)))
        torch.manual_seed(3)
        flags = []
        for step in range(4):
            if step == 2:       # a rollback-like change of the rate scale, and flags changed from outside
                trainer.lr_scale = 0.5
                trainer.recipe.nets["D"].requires_grad_(True)
            trainer.train_step(measure_grad_norm=step == 0)
            flags.append([p.requires_grad for p in trainer.recipe.parameters()])
        lrs = [g["lr"] for o in trainer.optimizers.values() for g in o.param_groups]
        stats = trainer.take_tick_stats()
        monkeypatch.undo()
        return trainer, flags, lrs, stats

    fast, plain = run(False), run(True)
    assert fast[1] == plain[1] and fast[2] == plain[2] and fast[2][0] == pytest.approx(1e-4)
    assert fast[3] == plain[3]
    for a, b in zip(fast[0].recipe.state_dict().values(), plain[0].recipe.state_dict().values()):
        assert torch.equal(a, b)
    for name in ("G", "D"):
        sa, sb = fast[0].optimizers[name].state_dict()["state"], plain[0].optimizers[name].state_dict()["state"]
        assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])


def test_cached_trainable_flags_follow_outside_changes():
    trainer = _trainer()
    D = trainer.recipe.nets["D"]
    trainer._set_trainable(("D",))
    D.requires_grad_(False)                       # e.g. a user's callback froze it
    trainer._set_trainable(("D",))
    assert all(p.requires_grad for p in D.parameters())
    assert not any(p.requires_grad for p in trainer.recipe.nets["G"].parameters())
