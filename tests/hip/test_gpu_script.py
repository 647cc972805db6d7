"""The GPU campaign script, run here on the CPU: the same code path a lent GPU runs, two steps long."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aiida_hip.dataset.campaign import training_data
from aiida_hip.hip import HIPConfig
from aiida_hip.hip.campaign import CampaignConfig, CampaignState, Stage, run

REPO = Path(__file__).resolve().parents[2]
TINY = HIPConfig(channels=8, num_layers=1, hessian_channels=4, radial_hidden=16, hessian_sum_rule=True)


def test_gpu_script_trains_the_state_and_adopt_takes_it_back(tmp_path, committed_shards):
    train, val, _, digest, parts = training_data(committed_shards, None)
    config = CampaignConfig(stages=(Stage("hessian_first", None),), init="random", model=TINY, ef_data=False)
    state = tmp_path / "state.pt"
    run(state, train, val, config, digest, data_parts=parts, max_steps=1, validate_every=None)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "OUT": str(out),
        "DEVICE": "cpu",
        "MAX_STEPS": "2",
        "STATE": str(state),
        "SHARDS": str(committed_shards),
        "PYTHON": sys.executable,
    }
    done = subprocess.run(
        ["bash", "scripts/gpu_campaign.sh", "train", "3"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    trained = CampaignState.load(out / "state.pt")
    assert trained.step == 3 and trained.config_hash == config.hash()
    assert "stopped at step 3" in (out / "campaign.log").read_text()
    assert CampaignState.load(state).step == 1  # the device works on a copy
    log = REPO / "data" / "campaign" / "campaign.log"
    before = log.read_bytes()
    try:
        adopt = subprocess.run(
            ["bash", "scripts/gpu_campaign.sh", "adopt", str(out)], cwd=REPO, env=env, capture_output=True, text=True
        )
    finally:
        log.write_bytes(before)  # the test's log lines stay out of the committed log
    assert adopt.returncode == 0, adopt.stderr
    assert CampaignState.load(state).step == 3
    again = subprocess.run(
        ["bash", "scripts/gpu_campaign.sh", "adopt", str(out)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert again.returncode != 0 and "not adopted" in again.stderr  # not ahead of the committed state any more
