"""The ``ising`` builtin (mdsdata MDS-2) and the physical observables of gankit.metrics.physics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gankit.config import DataConfig
from gankit.data import load_dataset
from gankit.metrics import physics as P

L = 8


def all_up(n: int = 1) -> torch.Tensor:
    return torch.ones(n, L, L)


def checkerboard() -> torch.Tensor:
    i, j = torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij")
    return (1.0 - 2.0 * ((i + j) % 2)).float()[None]                       # [1, L, L], +1 at (0, 0)


def test_uniform_and_checkerboard_observables():
    for s in (all_up(), -all_up()):
        assert P.magnetisation(s).item() == 1.0
        assert P.energy_per_spin(s).item() == -2.0          # without wrap-around bonds it would be -2 (L-1)/L
    assert P.magnetisation(checkerboard()).item() == 0.0
    assert P.energy_per_spin(checkerboard()).item() == 2.0


def test_energy_counts_periodic_bonds_of_a_flipped_corner_spin():
    s = all_up()
    s[0, 0, 0] = -1.0                                       # a corner: 2 of its 4 bonds wrap around the lattice
    n = L * L
    assert P.magnetisation(s).item() == pytest.approx(1 - 2 / n)
    assert P.energy_per_spin(s).item() == pytest.approx(-2 + 8 / n)        # 4 broken bonds, each -1 -> +1
    vertical_stripes = torch.ones(1, L, L)
    vertical_stripes[:, :, 1::2] = -1                       # bonds along x all -1 (antiparallel), along y all +1
    assert P.energy_per_spin(vertical_stripes).item() == 0.0


def test_two_point_correlation():
    r = torch.arange(L // 2 + 1)
    assert torch.equal(P.two_point_correlation(all_up()), torch.zeros(1, L // 2 + 1))   # connected: m^2 removed
    assert torch.equal(P.two_point_correlation(checkerboard())[0], (-1.0) ** r)
    stripes = torch.ones(1, L, L)
    stripes[:, :, 1::2] = -1                                # x axis: (-1)^r, y axis: 1, average of the two
    assert torch.equal(P.two_point_correlation(stripes)[0], ((-1.0) ** r + 1) / 2)
    half = torch.ones(1, L, L)
    half[:, :, L // 2:] = -1                                # two domains, m = 0: G(1) = (1 + (L-4)/L) / 2 by hand
    assert P.two_point_correlation(half, 1)[0, 1].item() == pytest.approx((1 + (L - 4) / L) / 2)


def test_to_spins_thresholds_uint8_and_float_images():
    u8 = torch.tensor([[[[0, 127], [128, 255]]]], dtype=torch.uint8)      # [1, 1, 2, 2]
    assert P.to_spins(u8).tolist() == [[[-1.0, -1.0], [1.0, 1.0]]]
    fl = torch.tensor([[[[-0.9, -0.01], [0.01, 1.0]]]])
    assert P.to_spins(fl).tolist() == [[[-1.0, -1.0], [1.0, 1.0]]]
    with pytest.raises(ValueError, match="square"):
        P.to_spins(torch.zeros(2, 1, 4, 5))


def test_phase_agreement_and_best_threshold_on_known_configurations():
    g = torch.Generator().manual_seed(0)
    ordered = all_up(10)                                    # e = -2: below T_c (class 0)
    disordered = torch.where(torch.rand(10, L, L, generator=g) < 0.5, 1.0, -1.0)   # e ~ 0: above T_c (class 1)
    images = torch.cat([ordered, disordered])[:, None]      # [20, 1, L, L] float in [-1, 1]
    asked = torch.tensor([0] * 10 + [1] * 10)
    right = P.phase_agreement(images, asked)
    assert right["agreement"] == 1.0 and right["class_0"] == 1.0 and right["energy_0"] == -2.0
    assert P.phase_agreement(images, 1 - asked)["agreement"] == 0.0
    half = P.phase_agreement(images, torch.zeros(20, dtype=torch.long))
    assert half["agreement"] == 0.5 and "class_1" not in half
    energy = P.energy_per_spin(images[:, 0])
    threshold, agree = P.best_threshold(energy, asked, low_is_class0=True)
    assert agree == 1.0 and -2.0 < threshold < float(energy[10:].min())
    assert P.best_threshold(P.magnetisation(images[:, 0]), asked, low_is_class0=False)[1] == 1.0
    assert P.CRITICAL_ENERGY == pytest.approx(-1.41421356)


def test_ising_builtin_splits_labels_and_resolution():
    train = load_dataset(DataConfig(spec="ising"), ("image",))
    test = load_dataset(DataConfig(spec="ising", split="test", resolution=32), ("image",))
    assert (train.info.size, test.info.size) == (4000, 1000)
    assert train.info.num_classes == 2 and train.info.class_names == ["below_Tc", "above_Tc"]
    real = train.tensors["image"]                           # uint8 [4000, 1, 64, 64], pure spins
    assert real.shape == (4000, 1, 64, 64) and set(real.unique().tolist()) == {0, 255}
    assert test.tensors["image"].shape == (1000, 1, 32, 32) and test.info.resolution == 32
    batch = test.get_batch(torch.arange(4))
    assert batch["image"].dtype == torch.float32 and batch["image"].min() >= -1 and batch["image"].max() <= 1
    labels = train.tensors["label"]
    assert 0.45 < labels.float().mean() < 0.55              # 2507 / 2493 classes in the whole set
    # known truth: the labels are the phase, so the energy phase of the real images agrees with them
    agreement = P.phase_agreement(real, labels)
    assert agreement["agreement"] > 0.98 and agreement["energy_0"] < P.CRITICAL_ENERGY < agreement["energy_1"]
    from gankit.data.ising import ising_arrays
    images, temperatures, all_labels = ising_arrays()
    tc = 2 / math.log(1 + math.sqrt(2))                     # 2.269: the labels file's classes are T < T_c / T > T_c
    assert np.array_equal(all_labels, (temperatures > tc).astype(np.int64))
    train_t, test_t = ising_arrays("train")[1], ising_arrays("test")[1]
    assert not set(train_t.tolist()) & set(test_t.tolist())                # disjoint splits
