"""A search's reference Hessians -> hash-checked shards -> a fine-tuned checkpoint (issue 29), on real xTB
searches of small reactions and a small real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from aiida_hip.cli import main
from aiida_hip.dataset.harvest import Label, folder_level, labels_from_folder, write_labels
from aiida_hip.dataset.learn import checkpoint_level, finetune_checkpoint
from aiida_hip.dataset.shards import load_shards
from aiida_hip.hip import HIPConfig, build_model, load_model, save_checkpoint
from aiida_hip.hip.data import DatasetError
from aiida_hip.hip.finetune import FinetuneSettings
from aiida_hip.hip.train import fit_normalisation
from aiida_hip.pipeline import Level, TSSearchSettings, read_reaction, ts_search
from tests.conftest import REACTIONS, SMALL

NAMES = ("hcn_hnc", "vinyl_alcohol_acetaldehyde", "ch3nc_ch3cn", "formamide_formimidic_acid")


@pytest.fixture(scope="module")
def searches(tmp_path_factory) -> dict[str, Path]:
    """Hessian-free xTB searches with thermochemistry: each leaves its TS and end Hessians in freq.npz files."""
    out = {}
    for name in NAMES:
        folder = tmp_path_factory.mktemp(name)
        r, p = read_reaction(REACTIONS / name / "reactant.xyz", REACTIONS / name / "product.xyz")
        result = ts_search(r, p, folder, Level(calculator="xtb", hessian="none"), TSSearchSettings(route="sella"))
        assert result.status == "success", result.message
        out[name] = folder
    return out


@pytest.fixture(scope="module")
def harvest(searches, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("harvest")
    labels = [label for name, folder in searches.items() for label in labels_from_folder(folder, name)]
    entry = write_labels(labels, root)
    assert entry["ok"] == len(NAMES) and entry["geometries"] == len(labels)
    return root


@pytest.fixture(scope="module")
def small_checkpoint(harvest, tmp_path_factory) -> Path:
    """A small untrained model with the data's scales (as training sets them)."""
    torch.manual_seed(3)
    model = build_model(SMALL)
    fit_normalisation(model, load_shards(harvest))
    return save_checkpoint(model, tmp_path_factory.mktemp("model") / "small.pt")


def test_labels_are_the_reference_hessians_of_the_search(searches):
    labels = labels_from_folder(searches["hcn_hnc"], "hcn_hnc")
    assert sorted(label.kind for label in labels) == ["product", "reactant", "ts"]
    ts = next(label for label in labels if label.kind == "ts")
    assert np.allclose(ts.hessian, ts.hessian.T, atol=1e-6)
    assert abs(ts.hessian.sum(axis=1)).max() < 0.05  # translation invariance of a finite-difference xTB Hessian
    assert np.linalg.eigvalsh(ts.hessian)[0] < -1.0  # the reaction mode (eV/A^2)
    saved = json.loads((Path(ts.source).parent / "freq.json").read_text())
    assert saved["energy_ev"] == pytest.approx(ts.energy)
    assert ts.sample().hessian.shape == (9, 9)


def test_written_shards_are_hash_checked_and_split_by_reaction(harvest, searches):
    train, test = load_shards(harvest, "train"), load_shards(harvest, "test")
    assert train and test, "four reactions: at least one on each side"
    assert not {s.reaction for s in train} & {s.reaction for s in test}
    assert folder_level(harvest) == "GFN2-xTB"
    # appending the same reactions again adds nothing; another level into the same folder is refused
    again = labels_from_folder(searches["hcn_hnc"], "hcn_hnc")
    assert write_labels(again, harvest) is None
    with pytest.raises(DatasetError, match="one level per shard folder"):
        write_labels([again[0]], harvest, level="B3LYP/6-31G* (PySCF)")
    # a corrupted shard is caught on the next load
    copy = harvest.parent / "corrupt"
    copy.mkdir()
    for path in harvest.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    shard = next(copy.glob("*.h5"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="corrupted"):
        load_shards(copy, "train")


def test_a_label_with_a_wrong_shape_is_refused():
    with pytest.raises(DatasetError, match="do not match"):
        Label("r", "ts", np.array([1, 1]), np.zeros((2, 3)), 0.0, np.zeros((2, 3)), np.zeros((3, 3)), "x")
    with pytest.raises(DatasetError, match="kind"):
        Label("r", "neb", np.array([1, 1]), np.zeros((2, 3)), 0.0, np.zeros((2, 3)), np.zeros((6, 6)), "x")


def test_finetune_writes_a_better_checkpoint_with_its_lineage(harvest, small_checkpoint, tmp_path):
    out = tmp_path / "child.pt"
    settings = FinetuneSettings(mode="head", epochs=40, lr=1e-2)
    report = finetune_checkpoint(small_checkpoint, [harvest], out, settings, lineage={"batch": "test"})
    assert report["train_hessian_mae_after"] < 0.7 * report["train_hessian_mae_before"]
    assert report["held_out"]["hessian_mae_before"] is not None
    child = load_model(out)
    metadata = child.checkpoint_metadata
    assert metadata["level"] == "GFN2-xTB" and metadata["lineage"] == {"batch": "test"}
    assert metadata["finetune"]["parent_sha256"] == report["parent_sha256"]
    assert metadata["lineage_chain"][-1]["sha256"] == report["parent_sha256"]
    parent = load_model(small_checkpoint)  # the head moved, the backbone did not
    for key, value in parent.state_dict().items():
        if key.startswith("backbone."):
            assert torch.equal(value, child.state_dict()[key]), key
    assert any(not torch.equal(v, child.state_dict()[k]) for k, v in parent.state_dict().items() if "hessian_head" in k)


def test_finetune_refuses_another_level_unless_asked(harvest, small_checkpoint, tmp_path):
    dft_model = tmp_path / "dft.pt"
    save_checkpoint(load_model(small_checkpoint), dft_model, {"level": "B3LYP/6-31G* (PySCF)"})
    assert checkpoint_level(load_model(dft_model).checkpoint_metadata) == "B3LYP/6-31G* (PySCF)"
    with pytest.raises(DatasetError, match="new_level"):
        finetune_checkpoint(dft_model, [harvest], tmp_path / "x.pt", FinetuneSettings(epochs=1))
    report = finetune_checkpoint(dft_model, [harvest], tmp_path / "x.pt", FinetuneSettings(epochs=1), new_level=True)
    assert report["level"] == "GFN2-xTB" and report["parent_level"] == "B3LYP/6-31G* (PySCF)"


def test_train_init_command(harvest, small_checkpoint, tmp_path):
    args = ["--data", str(harvest), "--workdir", str(tmp_path), "--epochs", "3"]
    result = CliRunner().invoke(main, ["train", "--init", str(small_checkpoint), *args])
    assert result.exit_code == 0, result.output
    assert "held-out Hessian MAE" in result.output
    report = json.loads((tmp_path / "finetune.json").read_text())
    assert report["sha256"] and (tmp_path / "finetuned.pt").is_file()
    # bad input: one clear line each, no traceback
    result = CliRunner().invoke(main, ["train", "--init", str(small_checkpoint), "--data", str(tmp_path), *args[2:]])
    assert result.exit_code == 1 and "not a shard folder" in result.output
    only_ch = HIPConfig.from_dict({**SMALL.to_dict(), "elements": [1, 6]})
    carbon = save_checkpoint(build_model(only_ch), tmp_path / "c.pt")
    result = CliRunner().invoke(main, ["train", "--init", str(carbon), *args])
    assert result.exit_code == 1 and "element(s) [7" in result.output, result.output
