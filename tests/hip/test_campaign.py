"""The resumable training campaign: exact resumes, refusals that say why, promotion only on improvement."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from aiida_hip.hip import HIPConfig, build_model, save_checkpoint, sha256
from aiida_hip.hip.campaign import (
    CampaignConfig,
    CampaignError,
    CampaignState,
    Stage,
    StateMismatchError,
    run,
)
from aiida_hip.hip.data import load_samples

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.h5"
TINY = HIPConfig(channels=8, num_layers=2, hessian_channels=4, radial_hidden=16)
# Two steps of each finite stage, then an open-ended end-to-end stage: 6 steps cross both boundaries.
CONFIG = CampaignConfig(
    stages=(Stage("energy_forces", 2), Stage("hessian", 2), Stage("end_to_end", None, lr=5e-4)),
    batch_size=4,
    warmup_steps=2,
    half_life_steps=3,
    dtype="float64",
    init="random",
    model=TINY,
)


@pytest.fixture(scope="module")
def sample():
    return load_samples(SAMPLE, "train")[::2], load_samples(SAMPLE, "val")[:8]


def _run(path, sample, steps, config=CONFIG, data_hash="d0", **kw):
    train, val = sample
    return run(path, train, val, config, data_hash, max_steps=steps, validate_every=None, **kw)


def _assert_same(a: CampaignState, b: CampaignState) -> None:
    assert (a.step, a.stage) == (b.step, b.stage)
    assert a.model.keys() == b.model.keys()
    for key in a.model:
        assert torch.equal(a.model[key], b.model[key]), key
    sa, sb = a.optimizer["state"], b.optimizer["state"]
    assert sa.keys() == sb.keys()
    for idx in sa:
        for name in sa[idx]:
            assert torch.equal(sa[idx][name], sb[idx][name]), (idx, name)
    assert a.optimizer["param_groups"] == b.optimizer["param_groups"]
    assert a.scheduler["last_epoch"] == b.scheduler["last_epoch"]
    assert torch.equal(a.rng["torch"], b.rng["torch"]) and a.rng["numpy"] == b.rng["numpy"]


@pytest.mark.parametrize("split", [3, 2])  # inside the hessian stage, and exactly on its boundary
def test_resume_is_exact(sample, tmp_path, split):
    one = _run(tmp_path / "one.pt", sample, 6)
    _run(tmp_path / "two.pt", sample, split)
    two = _run(tmp_path / "two.pt", sample, 6 - split)
    assert one.step == two.step == 6 and one.stage == "end_to_end"
    _assert_same(one, two)
    # What is on disk is what was returned, and it loads with weights_only=True.
    _assert_same(CampaignState.load(tmp_path / "two.pt"), two)
    payload = torch.load(tmp_path / "two.pt", weights_only=True)
    assert payload["format"] == "aiida-hip-campaign/1" and payload["data_hash"] == "d0"


def test_stages_train_the_right_parameters(sample, tmp_path):
    a = _run(tmp_path / "s.pt", sample, 2)  # energy_forces done
    b = _run(tmp_path / "s.pt", sample, 2)  # hessian done: the backbone stayed frozen
    backbone = [k for k in a.model if k.startswith("backbone.")]
    head = [k for k in a.model if k.startswith("hessian_head.")]
    assert all(torch.equal(a.model[k], b.model[k]) for k in backbone)
    assert any(not torch.equal(a.model[k], b.model[k]) for k in head)
    assert [h["event"] for h in b.history if "event" in h] == [
        "campaign start (random weights)",
        "stage energy_forces",
        "stage hessian",
    ]


def test_refuses_changed_data_and_config(sample, tmp_path):
    path = tmp_path / "state.pt"
    _run(path, sample, 1, data_hash="a" * 64)
    before = path.read_bytes()
    with pytest.raises(StateMismatchError, match="data hash changed") as err:
        _run(path, sample, 1, data_hash="b" * 64)
    assert err.value.what == "data" and "a" * 16 in str(err.value) and "b" * 16 in str(err.value)
    with pytest.raises(StateMismatchError, match="config hash changed") as err:
        _run(path, sample, 1, config=replace(CONFIG, lr=2e-3), data_hash="a" * 64)
    assert "lr: 0.001 -> 0.002" in str(err.value) and err.value.what == "config"
    assert isinstance(err.value, ValueError)
    assert path.read_bytes() == before  # a refusal leaves the state alone


def test_appended_data_is_accepted_other_changes_are_not(sample, tmp_path):
    path = tmp_path / "state.pt"
    _run(path, sample, 1, data_hash="h1", data_parts=["s0"])
    state = _run(path, sample, 1, data_hash="h2", data_parts=["s0", "s1"])
    assert (state.data_version, state.data_since_step, state.step) == (1, 1, 2)
    assert any("data grew from 1 to 2 parts" in h.get("event", "") for h in state.history)
    with pytest.raises(StateMismatchError, match="part 0 differs"):
        _run(path, sample, 1, data_hash="h3", data_parts=["sX", "s1", "s2"])
    with pytest.raises(StateMismatchError, match="shrank"):
        _run(path, sample, 1, data_hash="h4", data_parts=["s0"])


def test_config_hash_is_stable_and_complete():
    again = CampaignConfig.from_dict(json.loads(json.dumps(CONFIG.to_dict())))
    assert again == CONFIG and again.hash() == CONFIG.hash()
    assert replace(CONFIG, seed=1).hash() != CONFIG.hash()
    assert replace(CONFIG, model=replace(TINY, channels=4)).hash() != CONFIG.hash()
    assert CampaignConfig().model.avg_num_neighbors == 9.79  # the shipped architecture
    with pytest.raises(CampaignError, match="only the last stage may be open-ended"):
        CampaignConfig(stages=(Stage("hessian", None), Stage("end_to_end", 3)))
    with pytest.raises(CampaignError, match="name must be one of"):
        CampaignConfig(stages=(Stage("forces", 3),))
    assert CONFIG.stage_at(0)[0] == 0 and CONFIG.stage_at(3)[:2] == (1, 2) and CONFIG.stage_at(99)[0] == 2


def test_starts_from_a_checkpoint(sample, tmp_path):
    torch.manual_seed(5)
    base = build_model(TINY, dtype=torch.float64)
    ckpt = save_checkpoint(base, tmp_path / "base.pt")
    config = replace(CONFIG, init=str(ckpt))
    state = _run(tmp_path / "state.pt", sample, 0, config=config)
    assert state.step == 0 and state.meta["init_sha256"] == sha256(ckpt)
    assert all(torch.equal(v, state.model[k]) for k, v in base.state_dict().items())
    with pytest.raises(CampaignError, match="model config differs"):
        _run(tmp_path / "other.pt", sample, 0, config=replace(config, model=replace(TINY, channels=4)))
    # the same network with the sum-rule head starts from every weight it shares (all but the diagonal readout)
    summed = _run(tmp_path / "sum.pt", sample, 0, config=replace(config, model=replace(TINY, hessian_sum_rule=True)))
    assert summed.meta["converted"] == {"hessian_sum_rule": True}
    shared = {k: v for k, v in base.state_dict().items() if not k.startswith("hessian_head.diagonal.")}
    assert shared.keys() == summed.model.keys() and len(shared) < len(base.state_dict())
    assert all(torch.equal(v, summed.model[k]) for k, v in shared.items())


# ------------------------------------------------------------------------------------------ promotion


@pytest.fixture(scope="module")
def trained(sample, tmp_path_factory):
    """A state after a few steps of every stage and a handful of test geometries."""
    path = tmp_path_factory.mktemp("campaign") / "state.pt"
    state = _run(path, sample, 6)
    return state, load_samples(SAMPLE, "test")[::12]


def _perturbed(state: CampaignState, scale: float = 0.5) -> CampaignState:
    """The same state with noise on the Hessian head: forces unchanged, Hessians clearly worse."""
    gen = torch.Generator().manual_seed(0)
    model = {
        k: v + scale * torch.randn(v.shape, generator=gen, dtype=v.dtype) if k.startswith("hessian_head.") else v
        for k, v in state.model.items()
    }
    return replace(state, model=model)


CARD = (
    "# HIP default checkpoint\n\n- file: `ship.pt`, SHA-256 `{sha}`\n- architecture: `{{}}`\n"
    "- last training stage: hessian, epoch 3\n"
)


def test_worse_model_is_not_promoted(trained, tmp_path):
    from aiida_hip.dataset.campaign import evaluate_and_promote

    state, test = trained
    shipped = save_checkpoint(state.build_model(dtype=torch.float32), tmp_path / "ship.pt")
    digest = sha256(shipped)
    card = tmp_path / "MODEL_CARD.md"
    card.write_text(CARD.format(sha=digest))
    result = evaluate_and_promote(_perturbed(state), test, shipped, card, date="2026-12-01")
    assert not result["promoted"] and "Hessian MAE" in result["reason"]
    assert result["candidate"]["hessian_mae"] > result["shipped"]["hessian_mae"]
    assert sha256(shipped) == digest  # untouched
    text = card.read_text()
    assert "## Campaign history" in text and f"SHA-256 `{digest}`" in text
    row = [line for line in text.splitlines() if line.startswith("| 2026-12-01")]
    assert len(row) == 1 and row[0].endswith("| no |") and "| 6 | end_to_end |" in row[0]


def test_better_model_is_promoted_and_recorded(trained, tmp_path):
    from aiida_hip.dataset.campaign import evaluate_and_promote
    from aiida_hip.hip import load_model

    state, test = trained
    shipped = save_checkpoint(_perturbed(state).build_model(dtype=torch.float32), tmp_path / "ship.pt")
    card = tmp_path / "MODEL_CARD.md"
    card.write_text(CARD.format(sha=sha256(shipped)))
    old_sha = sha256(shipped)
    first = evaluate_and_promote(state, test, shipped, card, date="2026-12-01")
    assert first["promoted"], first["reason"]
    new_sha = sha256(shipped)
    assert sha256(tmp_path / "hip_previous.pt") == old_sha  # the replaced one stays, as evaluate's baseline
    assert first["sha256"] == new_sha
    promoted = load_model(shipped)  # float32, as shipped
    assert all(torch.equal(v.float(), promoted.state_dict()[k]) for k, v in state.model.items())
    assert promoted.checkpoint_metadata["campaign_step"] == 6
    # Against itself there is no improvement: a second row, not promoted.
    second = evaluate_and_promote(state, test, shipped, card, date="2026-12-02")
    assert not second["promoted"] and sha256(shipped) == new_sha
    text = card.read_text()
    assert f"SHA-256 `{new_sha}`" in text and "campaign step 6" in text
    assert f"- architecture: `{json.dumps(TINY.to_dict())}`" in text  # the promoted model's own config
    rows = [line for line in text.splitlines() if line.startswith("| 2026-12-0")]
    assert len(rows) == 2 and f"yes (`{new_sha[:12]}`)" in rows[0] and rows[1].endswith("| no |")
    assert text.count("## Campaign history") == 1


def test_promotion_rule():
    from aiida_hip.dataset.campaign import PromotionRule

    rule = PromotionRule()
    old = {"hessian_mae": 0.25, "force_mae": 0.15}
    assert rule.decide({"hessian_mae": 0.20, "force_mae": 0.157}, old)[0]  # forces 4.7 % worse: fine
    assert not rule.decide({"hessian_mae": 0.20, "force_mae": 0.16}, old)[0]  # forces 6.7 % worse
    assert not rule.decide({"hessian_mae": 0.249, "force_mae": 0.10}, old)[0]  # 0.4 % is no clear gain

    def counts(ts: int, minima: int) -> dict:
        return {"ts": {"correct": ts, "total": 50}, "minimum": {"correct": minima, "total": 50}}

    old = {"hessian_mae": 0.25, "force_mae": 0.15, "imag_counts": counts(10, 20)}
    # Right counts on 6 more of 100 geometries at the same Hessian MAE: a clear gain for TS search.
    assert rule.decide({"hessian_mae": 0.251, "force_mae": 0.15, "imag_counts": counts(14, 22)}, old)[0]
    assert not rule.decide({"hessian_mae": 0.251, "force_mae": 0.15, "imag_counts": counts(12, 21)}, old)[0]
    # ... but not at the price of a clearly worse Hessian.
    ok, why = rule.decide({"hessian_mae": 0.26, "force_mae": 0.15, "imag_counts": counts(30, 40)}, old)
    assert not ok and "Hessian MAE more than 1 % higher" in why
    assert rule.decide({"hessian_mae": 0.20, "force_mae": 0.2}, None) == (True, "no shipped checkpoint to compare with")


# --------------------------------------------------------------------------------------------- driver


def test_driver_trains_promotes_and_refuses(tmp_path, capsys):
    """``python -m aiida_hip.dataset.campaign`` on shards packed from the sample (no xTB is run)."""
    import h5py

    from aiida_hip.dataset.campaign import main
    from aiida_hip.dataset.shards import write_shard

    with h5py.File(SAMPLE) as h5:
        ids = sorted(h5["reactions"])
    root = tmp_path / "shards"
    write_shard(SAMPLE, root, ids[:5])
    write_shard(SAMPLE, root, ids)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(replace(CONFIG, dtype="float32").to_dict()))
    common = ["--root", str(root), "--work", str(tmp_path / "work"), "--state", str(tmp_path / "state.pt")]
    common += ["--ef", str(tmp_path / "no-ef")]  # not the repository's E+F files
    common += ["--shipped", str(tmp_path / "ship.pt"), "--card", str(tmp_path / "CARD.md"), "--test-samples", "4"]
    # Nothing shipped yet: the first evaluation promotes.
    assert main(["--minutes", "5", "--max-steps", "3", "--phase", "train", "--config", str(config), *common]) == 0
    state = CampaignState.load(tmp_path / "state.pt")
    assert state.step > 0 and (tmp_path / "ship.pt").is_file()
    assert "| yes (`" in (tmp_path / "CARD.md").read_text()
    # --phase all with fewer labelled reactions than --train-after: no training (and, past the label
    # target, no labelling either).
    assert main(["--minutes", "0.05", "--train-after", "100", "--label-target", "5", *common]) == 0
    assert CampaignState.load(tmp_path / "state.pt").step == state.step
    # Another config: refused with the reason in the log, state untouched.
    config.write_text(json.dumps(replace(CONFIG, dtype="float32", seed=3).to_dict()))
    assert main(["--minutes", "0.05", "--phase", "train", "--config", str(config), *common]) == 2
    out = capsys.readouterr().out
    assert "waits for --train-after 100" in out and "no more labelling" in out
    assert "config hash changed" in out and "seed: 0 -> 3" in out
    assert CampaignState.load(tmp_path / "state.pt").step == state.step


def _ef_only(samples):
    """The same geometries as energy+force samples (no Hessian), as the E+F files provide them."""
    return [replace(s, hessian=None, kind="thermal") for s in samples]


def test_energy_force_samples_join_the_backbone_stage_only_and_resume_exactly(sample, tmp_path):
    """E+F geometries widen the energy_forces stage's pool; the Hessian stages still draw Hessian samples
    (a batch without Hessians there would have no loss term); a split run equals an uninterrupted one."""
    ef = _ef_only(sample[0][:20])
    kw = {"data_hash": "h", "data_parts": ["s0", "ef:e0"], "ef_train": ef}
    one = _run(tmp_path / "one.pt", sample, 6, **kw)
    _run(tmp_path / "two.pt", sample, 1, **kw)
    two = _run(tmp_path / "two.pt", sample, 5, **kw)
    assert one.step == 6 and one.stage == "end_to_end"
    _assert_same(one, two)
    plain = _run(tmp_path / "plain.pt", sample, 1, data_hash="h", data_parts=["s0"])
    first = _run(tmp_path / "first.pt", sample, 1, **kw)
    assert any(not torch.equal(plain.model[k], first.model[k]) for k in plain.model)  # another first batch


def test_shards_and_energy_force_files_grow_independently(sample, tmp_path):
    path = tmp_path / "state.pt"
    _run(path, sample, 1, data_hash="h1", data_parts=["s0", "ef:e0"])
    state = _run(path, sample, 1, data_hash="h2", data_parts=["s0", "s1", "ef:e0", "ef:e1"])
    assert state.data_version == 1
    with pytest.raises(StateMismatchError, match="not an append-only extension"):
        _run(path, sample, 1, data_hash="h3", data_parts=["s0", "s1", "ef:eX", "ef:e1", "ef:e2"])


def test_end_to_end_interleaves_energy_force_batches(sample, tmp_path):
    """With ``ef_every=2`` every second end_to_end step is an E+F batch: the head sees no gradient on it,
    the backbone does; the interleaved run still resumes exactly, and the field is in the config hash."""
    config = replace(CONFIG, stages=(Stage("end_to_end", None, lr=5e-4),), ef_every=2)
    assert config.hash() != replace(config, ef_every=0).hash() == replace(CONFIG, stages=config.stages).hash()
    ef = _ef_only(sample[0][:20])
    kw = {"data_hash": "h", "data_parts": ["s0", "ef:e0"], "ef_train": ef, "config": config}
    one = _run(tmp_path / "one.pt", sample, 1, **kw)  # step 0: a Hessian batch
    two = _run(tmp_path / "one.pt", sample, 1, **kw)  # step 1: an E+F batch
    head = [k for k in one.model if k.startswith("hessian_head.")]
    backbone = [k for k in one.model if k.startswith("backbone.")]
    # AdamW moves a parameter only once it has had a gradient; after one Hessian step every head parameter
    # has momentum, so look at the optimiser's step counts instead: the head's stayed at 1.
    counts = {int(s["step"]) for s in two.optimizer["state"].values()}
    assert counts == {1, 2}
    assert any(not torch.equal(one.model[k], two.model[k]) for k in backbone)
    assert head
    split = _run(tmp_path / "split.pt", sample, 2, **kw)
    _assert_same(two, split)
    with pytest.raises(CampaignError, match="ef_every"):
        replace(config, ef_every=1)


def test_amend_changes_loss_weights_only_and_records_it(sample, tmp_path):
    path = tmp_path / "state.pt"
    _run(path, sample, 2, config=replace(CONFIG, sign_weight=0.0))
    weighted = replace(CONFIG, sign_weight=1.0, ef_every=2)
    with pytest.raises(StateMismatchError, match=r"sign_weight: 0\.0 -> 1\.0"):
        _run(path, sample, 1, config=weighted)
    state = _run(path, sample, 1, config=weighted, amend=True)
    assert state.step == 3 and state.config_hash == weighted.hash()
    event = next(h for h in state.history if h.get("event") == "config amended")
    assert event["step"] == 2 and "sign_weight: 0.0 -> 1.0" in event["changes"]
    assert _run(path, sample, 1, config=weighted).step == 4  # the amended config is the state's own now
    with pytest.raises(StateMismatchError, match="may be amended; changed: batch_size"):
        _run(path, sample, 1, config=replace(weighted, batch_size=2), amend=True)


def test_hessian_first_trains_everything_with_one_backward_pass(sample, tmp_path):
    """``hessian_first``: backbone and head move on the Hessian loss (plus the energy), no force term and no
    graph kept for a second derivative; with ``ef_every`` its E+F steps draw from the Hessian geometries.
    New model and config fields at their old values leave the hash as it was (states keep resuming)."""
    from aiida_hip.hip.model import MolecularBatch
    from aiida_hip.hip.train import stage_forward

    model_cfg = replace(TINY, hessian_sum_rule=True)
    config = replace(CONFIG, stages=(Stage("hessian_first", None, lr=5e-4),), model=model_cfg, ef_data=False)
    assert replace(CONFIG, ef_data=True).hash() == CONFIG.hash()
    assert replace(CONFIG, model=replace(TINY, hessian_sum_rule=False)).hash() == CONFIG.hash()
    assert config.hash() != replace(config, model=TINY).hash()
    one = _run(tmp_path / "hf.pt", sample, 1, config=config)
    two = _run(tmp_path / "hf.pt", sample, 1, config=config)
    for prefix in ("backbone.", "hessian_head."):
        keys = [k for k in one.model if k.startswith(prefix)]
        assert any(not torch.equal(one.model[k], two.model[k]) for k in keys), prefix
    model = two.build_model()
    train = sample[0]
    data = MolecularBatch.from_molecules([(s.numbers, s.positions) for s in train[:3]], torch.float64, "cpu")
    model.train()
    out = stage_forward(model, data, "hessian_first", training=True)
    assert "forces" not in out and not data.positions.requires_grad
    assert out["hessian_flat"].requires_grad and out["energy"].requires_grad
    interleaved = replace(config, ef_every=2)
    a = _run(tmp_path / "ef.pt", sample, 2, config=interleaved)  # step 1 is an E+F step on Hessian geometries
    counts = {int(s["step"]) for s in a.optimizer["state"].values()}
    assert counts == {1, 2}  # the head had no gradient on the E+F step


def test_realistic_barriers_weigh_more_in_the_pool(sample):
    """Geometries of reactions at or below ``realistic_barrier`` enter ``realistic_repeat`` times, the rest once;
    the sample file records each reaction's NEB barrier; at the neutral values the hash is unchanged."""
    from aiida_hip.hip.campaign import weighted_pool

    train = sample[0]
    assert all(s.barrier is not None for s in train)
    cut = sorted(s.barrier for s in train)[len(train) // 2]
    config = replace(CONFIG, realistic_barrier=cut, realistic_repeat=3)
    pool = weighted_pool(train, config)
    low = sum(s.barrier <= cut for s in train)
    assert 0 < low < len(train) and len(pool) == len(train) + 2 * low and pool[: len(train)] == train
    assert weighted_pool(train, CONFIG) == train
    assert replace(CONFIG, realistic_barrier=4.0, realistic_repeat=1).hash() == CONFIG.hash() != config.hash()
    with pytest.raises(CampaignError, match="realistic_repeat"):
        replace(CONFIG, realistic_repeat=0)
