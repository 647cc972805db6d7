"""Training on the committed xTB sample: losses go down, checkpoints restore, bad input is caught."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aiida_hip.hip import HIPConfig, HIPModel, load_model
from aiida_hip.hip.data import collate, load_samples
from aiida_hip.hip.features import BackboneFeatures
from aiida_hip.hip.train import TrainSettings, evaluate_loss, stage_forward, train

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.h5"
TINY = HIPConfig(channels=8, num_layers=2, hessian_channels=4, radial_hidden=16)


@pytest.fixture(scope="module")
def sample():
    train_set, val_set = load_samples(SAMPLE, "train"), load_samples(SAMPLE, "val")
    assert len(train_set) >= 100 and len(val_set) >= 10
    return train_set[::3], val_set


def test_two_stage_training_lowers_losses(sample, tmp_path):
    torch.manual_seed(0)
    model = HIPModel(TINY)
    train_set, val_set = sample
    ef = TrainSettings(stage="energy_forces", epochs=4, batch_size=8, lr=5e-3, patience=10)
    state = train(model, train_set, val_set, ef, tmp_path, progress=False)
    losses = [h["train_loss"] for h in state["history"]]
    assert losses[-1] < losses[0]
    backbone_before = [p.detach().clone() for p in model.backbone.parameters()]
    hs = TrainSettings(stage="hessian", epochs=3, batch_size=8, lr=5e-3, patience=10)
    before = evaluate_loss(model, train_set, hs)["hessian"]
    state = train(model, train_set, val_set, hs, tmp_path, progress=False)
    after = evaluate_loss(model, train_set, hs)["hessian"]
    assert after < before
    # The backbone stays frozen while the head trains.
    assert all(torch.equal(a, b.detach()) for a, b in zip(backbone_before, model.backbone.parameters(), strict=True))
    assert (tmp_path / "log.csv").read_text().count("\n") == 1 + 4 + 3


def test_hessian_first_training_lowers_the_hessian_loss_of_a_sum_rule_model(sample, tmp_path):
    """The Hessian-first stage trains backbone and head together on the Hessian loss (no force term)."""
    from dataclasses import replace

    torch.manual_seed(0)
    model = HIPModel(replace(TINY, hessian_sum_rule=True))
    train_set, val_set = sample
    hf = TrainSettings(stage="hessian_first", epochs=3, batch_size=8, lr=5e-3, patience=10)
    assert hf.weights().forces == 0.0 and hf.weights().hessian > 0 and hf.weights().energy > 0
    before = evaluate_loss(model, train_set, hf)
    backbone_before = [p.detach().clone() for p in model.backbone.parameters()]
    train(model, train_set, val_set, hf, tmp_path, progress=False)
    after = evaluate_loss(model, train_set, hf)
    assert "forces" not in after and after["hessian"] < before["hessian"]
    assert any(
        not torch.equal(a, b.detach()) for a, b in zip(backbone_before, model.backbone.parameters(), strict=True)
    )


def test_best_checkpoint_reloads_identically(sample, tmp_path):
    torch.manual_seed(1)
    model = HIPModel(TINY)
    train_set, val_set = sample
    train(model, train_set[:16], val_set, TrainSettings(epochs=1, batch_size=8), tmp_path, progress=False)
    reloaded = load_model(tmp_path / "energy_forces_best.pt")
    s = val_set[0]
    a, b = model.predict(s.numbers, s.positions), reloaded.predict(s.numbers, s.positions)
    assert a["energy"] == b["energy"]
    np.testing.assert_array_equal(a["hessian"], b["hessian"])


def test_resume_continues_and_rejects_other_config(sample, tmp_path):
    train_set, val_set = sample
    settings = TrainSettings(epochs=1, batch_size=16)
    train(HIPModel(TINY), train_set[:16], val_set, settings, tmp_path, progress=False)
    longer = TrainSettings(epochs=2, batch_size=16)
    state = train(HIPModel(TINY), train_set[:16], val_set, longer, tmp_path, progress=False)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    other = HIPConfig(channels=4, num_layers=1, hessian_channels=2, radial_hidden=8)
    with pytest.raises(ValueError, match="different model configuration"):
        train(HIPModel(other), train_set[:16], val_set, longer, tmp_path, progress=False)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="stage must be one of"):
        TrainSettings(stage="forces")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            TrainSettings(device="cuda")


def test_cached_backbone_features_give_the_same_hessian_step(sample):
    """The Hessian stage's feature cache: same head input, same prediction, any batch composition."""
    torch.manual_seed(1)
    model = HIPModel(TINY)
    train_set = sample[0][:40]
    features = BackboneFeatures(model, train_set, chunk=16)
    assert len(features) == len(train_set) and features.nbytes > 0
    for idx in ([3, 17, 5, 39], [0, 1, 2, 3, 4, 5, 6, 7, 8]):
        data, _ = collate([train_set[i] for i in idx], model.dtype, "cpu")
        plain = stage_forward(model, data, "hessian", training=False)["hessian_flat"]
        cached = stage_forward(model, data, "hessian", training=False, features=features.gather(idx))["hessian_flat"]
        torch.testing.assert_close(cached, plain, rtol=1e-5, atol=1e-6)
