"""The model-quality campaign: label data and train a little in every session, and keep all of it.

Two CPU cores and sessions of a few hours cannot regenerate 24k xTB Hessians and train for days in
one go. The campaign therefore works in small committed increments under ``data/campaign/``:

- data: reactions are labelled a few at a time (``aiida-hip data generate`` on one core) and packed
  into hash-checked shards (:mod:`aiida_hip.dataset.shards`);
- training (once the shards hold ``train_after`` reactions): the training state (model, optimiser,
  scheduler, step, data and config hashes) in ``state.pt`` resumes where the last session stopped
  (:mod:`aiida_hip.hip.campaign`);
- promotion: at the end of a session that trained, the campaign model and the shipped checkpoint are
  evaluated on the same test geometries in one run; the campaign model replaces the shipped one only
  if :class:`PromotionRule` says it is better, and the model card's "Campaign history" gets a row.

How the minutes are shared (``--phase all``): while fewer than ``--train-after`` reactions are
labelled (ok, not skipped) the whole session labels data, since there is nothing worth training on
yet; from then on labelling gets at most ``--data-fraction`` of the session and training the rest;
once ``--label-target`` reactions exist, no more labelling. ``--phase data|train`` forces one phase.

Run it with ``bash scripts/train_campaign.sh --minutes N`` (``nice``, one core, logs to
``runs/campaign.log``); commit ``data/campaign/`` before the session ends.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import torch

from ..hip.campaign import (
    EF_PART,
    CampaignConfig,
    CampaignState,
    StateMismatchError,
    run,
    state_summary,
    weighted_pool,
)
from ..hip.checkpoints import DEFAULT_CHECKPOINT, PREVIOUS_NAME, load_model, save_checkpoint, sha256
from .ef_samples import load_ef_samples, verify_ef
from .evaluate import evaluation_subset, model_metrics
from .shards import data_hash, done_ids, load_shards, read_manifest, summary, verify, write_shard

ROOT = Path("data/campaign/shards")
EF_ROOT = Path("data/campaign/ef")
STATE = Path("data/campaign/state.pt")
WORK = Path("runs/campaign")


def _log(message: str) -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S"), message, flush=True)


def label_until(deadline: float, root: Path = ROOT, work: Path = WORK, chunk: int = 4, limit: int | None = None) -> int:
    """Label reactions in chunks of ``chunk`` until ``deadline`` (time.time()); returns reactions packed."""
    from .generate import GenerationSettings, generate  # RDKit: the GPU image, which only trains, lacks it

    work.mkdir(parents=True, exist_ok=True)
    raw = work / "generate.h5"
    packed = 0
    while time.time() < deadline and (limit is None or packed < limit):
        done = done_ids(read_manifest(root))
        counts = generate(raw, GenerationSettings(), workers=1, limit=chunk, progress=False, exclude=done)
        with h5py.File(raw, "r") as h5:
            fresh = sorted(set(h5["reactions"].keys()) - done)
        entry = write_shard(raw, root, fresh)
        if entry is None:
            _log(f"nothing left to label ({counts['enumerated']} reactions enumerated)")
            break
        packed += entry["ok"] + entry["skipped"]
        _log(
            f"{entry['file']}: {entry['ok']} ok, {entry['skipped']} skipped, {entry['geometries']} geometries; "
            f"total {summary(root)}"
        )
    return packed


# ---------------------------------------------------------------------------------------- promotion


def count_accuracy(metrics: dict) -> float | None:
    """Share of test geometries (minima and TS region together) whose imaginary-mode count is right."""
    counts = metrics.get("imag_counts") or {}
    total = sum(c["total"] for c in counts.values())
    return sum(c["correct"] for c in counts.values()) / total if total else None


@dataclass(frozen=True)
class PromotionRule:
    """When the campaign model replaces the shipped checkpoint (both evaluated in the same run).

    Promote if, on the same test geometries, the campaign model is clearly better in one way that TS
    search needs and no worse in the others: its Hessian MAE is at least ``min_hessian_gain`` lower, or its
    imaginary-mode counts (minima and TS region together) are right on at least ``min_count_gain`` more of
    the geometries; and its Hessian MAE is at most ``max_hessian_loss``, its force MAE at most
    ``max_force_loss`` higher (relative). Defaults: 1 % lower Hessian MAE or 5 points more right counts;
    Hessian MAE at most 1 %, force MAE at most 5 % higher. Nothing shipped yet: promote.
    """

    min_hessian_gain: float = 0.01
    min_count_gain: float = 0.05
    max_hessian_loss: float = 0.01
    max_force_loss: float = 0.05

    def decide(self, candidate: dict, shipped: dict | None) -> tuple[bool, str]:
        if shipped is None:
            return True, "no shipped checkpoint to compare with"
        h_new, h_old = candidate["hessian_mae"], shipped["hessian_mae"]
        f_new, f_old = candidate["force_mae"], shipped["force_mae"]
        c_new, c_old = count_accuracy(candidate), count_accuracy(shipped)
        change = f"Hessian MAE {h_old:.4g} -> {h_new:.4g}, force MAE {f_old:.4g} -> {f_new:.4g}"
        if c_new is not None and c_old is not None:
            change += f", imaginary counts right {c_old:.2f} -> {c_new:.2f}"
        if h_new > (1 + self.max_hessian_loss) * h_old:
            return False, f"{change}: Hessian MAE more than {100 * self.max_hessian_loss:g} % higher"
        if f_new > (1 + self.max_force_loss) * f_old:
            return False, f"{change}: force MAE more than {100 * self.max_force_loss:g} % higher"
        hessian_gain = h_new < (1 - self.min_hessian_gain) * h_old
        count_gain = c_new is not None and c_old is not None and c_new >= c_old + self.min_count_gain
        if not (hessian_gain or count_gain):
            return False, (
                f"{change}: no clear gain (Hessian MAE {100 * self.min_hessian_gain:g} % lower or "
                f"{100 * self.min_count_gain:g} points more right counts needed)"
            )
        return True, change

    def text(self) -> str:
        return (
            f"promoted only if the test Hessian MAE is at least {100 * self.min_hessian_gain:g} % lower than the "
            f"shipped checkpoint's, or the imaginary-mode count is right on at least {100 * self.min_count_gain:g} "
            f"points more of the test geometries, with the Hessian MAE at most {100 * self.max_hessian_loss:g} % "
            f"and the force MAE at most {100 * self.max_force_loss:g} % higher; both models evaluated in the "
            "same run on the same test geometries"
        )


HISTORY_HEADING = "## Campaign history"
HISTORY_COLUMNS = (
    "date",
    "steps",
    "stage",
    "data",
    "test geometries",
    "force MAE [eV/A]",
    "Hessian MAE [eV/A^2]",
    "CosSim(v1)",
    "imag. count minima",
    "imag. count TS",
    "shipped: force / Hessian MAE",
    "promoted",
)


def _count(metrics: dict, group: str) -> str:
    c = metrics["imag_counts"][group]
    return f"{c['correct']}/{c['total']}" + (f" ({c['correct'] / c['total']:.2f})" if c["total"] else "")


def history_row(state, metrics: dict, shipped: dict | None, promoted: bool, date: str, sha: str | None) -> str:
    cells = [
        date,
        str(state.step),
        state.stage,
        f"`{state.data_hash[:8]}`",
        f"{metrics['n_samples']} ({metrics['n_reactions']} reactions)",
        f"{metrics['force_mae']:.4g}",
        f"{metrics['hessian_mae']:.4g}",
        f"{metrics['cossim_v1']:.4g}",
        _count(metrics, "minimum"),
        _count(metrics, "ts"),
        "-" if shipped is None else f"{shipped['force_mae']:.4g} / {shipped['hessian_mae']:.4g}",
        f"yes (`{sha[:12]}`)" if promoted and sha else "yes" if promoted else "no",
    ]
    return "| " + " | ".join(cells) + " |"


def append_history(card_path: Path, row: str, rule: PromotionRule) -> None:
    """Add ``row`` to the card's history table (the section is created at the end if missing)."""
    card_path = Path(card_path)
    text = card_path.read_text() if card_path.is_file() else "# HIP default checkpoint\n"
    lines = text.rstrip("\n").split("\n")
    if HISTORY_HEADING not in lines:
        lines += [
            "",
            HISTORY_HEADING,
            "",
            "Every session of `bash scripts/train_campaign.sh` that trains evaluates the campaign model "
            "(`data/campaign/state.pt`) and the shipped checkpoint on the same test geometries (HIP-predicted "
            f"Hessians) and adds a row; the campaign model is {rule.text()}. Imaginary-mode counts: correct / "
            "reference geometries with 0 (minima) or 1 (transition-state region) imaginary modes.",
            "",
            "| " + " | ".join(HISTORY_COLUMNS) + " |",
            "|" + "---|" * len(HISTORY_COLUMNS),
        ]
        lines.append(row)
    else:
        start = lines.index(HISTORY_HEADING)
        end = next((k for k in range(start + 1, len(lines)) if lines[k].startswith("## ")), len(lines))
        table = [k for k in range(start + 1, end) if lines[k].startswith("|")]
        lines.insert((table[-1] if table else end - 1) + 1, row)
    tmp = card_path.with_name(card_path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, card_path)


def _update_card_header(card_path: Path, sha: str, state, date: str) -> None:
    """Point the card's file line at the promoted checkpoint's SHA-256, and its architecture line at its config
    (a campaign may train another architecture than the checkpoint it replaces)."""
    if not Path(card_path).is_file():
        return
    text = Path(card_path).read_text()
    text = re.sub(r"(?m)^(- file: `[^`]+`, SHA-256 `)[0-9a-f]{64}(`)", rf"\g<1>{sha}\g<2>", text, count=1)
    architecture = json.dumps(state.campaign_config().model.to_dict())
    text = re.sub(r"(?m)^- architecture: `.*`$", lambda _: f"- architecture: `{architecture}`", text, count=1)
    text = re.sub(
        r"(?m)^- last training stage:.*$",
        f"- last training stage: {state.stage}, campaign step {state.step} (promoted {date}, see Campaign history)",
        text,
        count=1,
    )
    Path(card_path).write_text(text)


def evaluate_and_promote(
    state,
    test_samples: list,
    shipped_path: str | Path | None = None,
    card_path: str | Path | None = None,
    max_samples: int | None = 200,
    rule: PromotionRule = PromotionRule(),
    date: str | None = None,
    log=None,
) -> dict:
    """Evaluate the campaign model and the shipped checkpoint on the same geometries; promote if better.

    ``state`` is a :class:`~aiida_hip.hip.campaign.CampaignState` or the path of one. Both models run
    in float32, as shipped. The card (default: ``MODEL_CARD.md`` next to the shipped checkpoint)
    always gets a history row; the shipped checkpoint is rewritten (atomically, by
    ``save_checkpoint``) only on promotion.
    """
    say = log or (lambda message: None)
    if not isinstance(state, CampaignState):
        state = CampaignState.load(state)
    if not test_samples:
        raise ValueError("no test geometries to evaluate on")
    shipped_path = Path(shipped_path or DEFAULT_CHECKPOINT)
    card_path = Path(card_path or shipped_path.with_name("MODEL_CARD.md"))
    date = date or datetime.date.today().isoformat()
    samples = evaluation_subset(list(test_samples), max_samples)
    candidate = state.build_model(dtype=torch.float32)
    t0 = time.perf_counter()
    new = model_metrics(candidate, samples)
    old = model_metrics(load_model(shipped_path), samples) if shipped_path.is_file() else None
    promoted, reason = rule.decide(new, old)
    say(f"evaluated on {len(samples)} test geometries in {time.perf_counter() - t0:.0f} s: {reason}")
    sha = None
    if promoted:
        metadata = {
            "stage": state.stage,
            "epoch": None,
            "campaign_step": state.step,
            "campaign_config_hash": state.config_hash,
            "data_hash": state.data_hash,
            "promoted": date,
            "test": {k: v for k, v in new.items() if k != "imag_counts"},
        }
        tmp = shipped_path.with_name(shipped_path.name + ".tmp")
        save_checkpoint(candidate, tmp, metadata)
        if shipped_path.is_file():  # the replaced checkpoint stays as the baseline of `aiida-hip evaluate`
            previous = shipped_path.with_name(PREVIOUS_NAME)
            shutil.copyfile(shipped_path, previous.with_name(previous.name + ".tmp"))
            os.replace(previous.with_name(previous.name + ".tmp"), previous)
        os.replace(tmp, shipped_path)
        sha = sha256(shipped_path)
        _update_card_header(card_path, sha, state, date)
        say(f"promoted: {shipped_path} is now the campaign model at step {state.step} (SHA-256 {sha[:12]})")
    row = history_row(state, new, old, promoted, date, sha)
    append_history(card_path, row, rule)
    return {"candidate": new, "shipped": old, "promoted": promoted, "reason": reason, "row": row, "sha256": sha}


# --------------------------------------------------------------------------------------------- main


def _lock(work: Path):
    """One campaign at a time: an exclusive lock on ``work/campaign.lock`` held until the process ends."""
    work.mkdir(parents=True, exist_ok=True)
    handle = open(work / "campaign.lock", "w")  # noqa: SIM115 (held for the life of the process)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise SystemExit(f"another campaign holds {work / 'campaign.lock'}; wait for it to finish") from None
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def data_phase(deadline: float, args, started: float) -> None:
    """Label chunks until the deadline, the label target or (``--phase all``) the data share runs out."""
    share_end = started + args.data_fraction * (deadline - started)
    while time.time() < deadline:
        n = summary(args.root)["reactions_ok"]
        if n >= args.label_target:
            _log(f"data: {n} reactions labelled >= --label-target {args.label_target}, no more labelling")
            return
        if args.phase == "all" and n >= args.train_after and time.time() >= share_end:
            _log(f"data: share of the session used ({args.data_fraction:g}); training gets the rest")
            return
        if label_until(deadline, args.root, args.work, args.chunk, limit=1) == 0:
            return


def training_data(root: Path, ef_root: Path | None) -> tuple[list, list, list, str, list[str]]:
    """Hessian train/val geometries, energy+force train geometries, the data hash and its parts.

    Without E+F files (or ``ef_root=None``) the hash is the shards' alone (so states trained before them
    still resume); with them it covers both, and their file hashes join the parts with ``EF_PART`` (they
    grow on their own).
    """
    manifest = verify(root)
    digest, parts = data_hash(manifest), [s["sha256"] for s in manifest["shards"]]
    train, val, ef_train = load_shards(root, "train"), load_shards(root, "val"), []
    if ef_root is not None and (Path(ef_root) / "manifest.json").is_file():
        ef_parts = [EF_PART + f["sha256"] for f in verify_ef(ef_root)["files"]]
        ef_train = load_ef_samples(ef_root, "train")
        digest = hashlib.sha256((digest + "".join(ef_parts)).encode()).hexdigest()
        parts += ef_parts
    return train, val, ef_train, digest, parts


def train_phase(deadline: float, args) -> int:
    """Resume the state, train until the deadline (less the evaluation reserve), evaluate, promote."""
    if args.config is not None:
        config = CampaignConfig.from_dict(json.loads(Path(args.config).read_text()))
    elif args.state.is_file():
        config = CampaignState.load(args.state).campaign_config()  # resume with the state's own config
    else:
        config = CampaignConfig()
    train, val, ef_train, digest, parts = training_data(args.root, args.ef if config.ef_data else None)
    if not train:
        _log("train: the shards hold no training geometries yet")
        return 0
    pool = weighted_pool(train, config)
    _log(
        f"train: {len(train)} train / {len(val)} val geometries (pool {len(pool)} with the realistic-barrier "
        f"repeats; + {len(ef_train)} energy+force), data {digest[:12]}, config {config.hash()[:12]}"
    )
    train = pool
    before = CampaignState.load(args.state).step if args.state.is_file() else None
    try:
        state = run(
            args.state,
            train,
            val,
            config,
            digest,
            data_parts=parts,
            deadline=deadline - 60 * args.eval_minutes,
            max_steps=args.max_steps,
            save_every_s=60 * args.save_minutes,
            validate_every=args.validate_every,
            log=lambda m: _log("train: " + m),
            should_stop=lambda: _STOP["requested"],
            ef_train=ef_train,
            amend=args.amend,
            device=args.device,
        )
    except StateMismatchError as exc:
        _log(f"train: {exc}")
        return 2
    _log(f"train: {state_summary(state)}; state {args.state.stat().st_size / 2**20:.1f} MiB")
    if args.no_promote or state.step == before:
        return 0
    test = load_shards(args.root, "test")
    if not test:
        _log("train: no test geometries in the shards yet: nothing evaluated, nothing promoted")
        return 0
    result = evaluate_and_promote(
        state, test, args.shipped, args.card, max_samples=args.test_samples, log=lambda m: _log("promote: " + m)
    )
    _log(f"promote: {'promoted' if result['promoted'] else 'kept the shipped checkpoint'}; card row {result['row']}")
    return 0


_STOP = {"training": False, "requested": False}


def _on_term(signum, frame) -> None:
    """SIGTERM/SIGINT: while training, finish the step and save; otherwise stop at once."""
    if _STOP["training"]:
        _STOP["requested"] = True
        return
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True, help="Wall-time budget of this invocation.")
    parser.add_argument("--phase", choices=("all", "data", "train"), default="all", help="Force one phase.")
    parser.add_argument("--root", type=Path, default=ROOT, help="Committed shards and manifest.")
    parser.add_argument("--ef", type=Path, default=EF_ROOT, help="Committed energy+force files (if any).")
    parser.add_argument("--work", type=Path, default=WORK, help="Scratch folder (not committed).")
    parser.add_argument("--chunk", type=int, default=4, help="Reactions per shard.")
    parser.add_argument("--train-after", type=int, default=400, help="Labelled reactions before training starts.")
    parser.add_argument("--label-target", type=int, default=1000, help="Labelled reactions after which to stop.")
    parser.add_argument(
        "--data-fraction", type=float, default=0.25, help="Share of the minutes for labelling once training runs."
    )
    parser.add_argument("--state", type=Path, default=STATE, help="The committed training state.")
    parser.add_argument("--config", type=Path, default=None, help="CampaignConfig as JSON (default: the state's).")
    parser.add_argument("--save-minutes", type=float, default=5.0, help="Save the state this often.")
    parser.add_argument("--max-steps", type=int, default=None, help="Stop training after this many steps.")
    parser.add_argument("--validate-every", type=int, default=1000, help="Validation every N steps.")
    parser.add_argument("--eval-minutes", type=float, default=2.0, help="Minutes kept for the test evaluation.")
    parser.add_argument("--test-samples", type=int, default=200, help="Test geometries evaluated per session.")
    parser.add_argument("--shipped", type=Path, default=None, help="Shipped checkpoint (default: the package's).")
    parser.add_argument("--card", type=Path, default=None, help="Model card (default: next to the checkpoint).")
    parser.add_argument("--no-promote", action="store_true", help="Train only: no evaluation, no promotion.")
    parser.add_argument("--device", default="cpu", help="Torch device to train on (cuda on a GPU machine).")
    parser.add_argument(
        "--amend",
        action="store_true",
        help="With --config: let the state continue under changed loss weights or ef_every (recorded in its history).",
    )
    args = parser.parse_args(argv)
    if args.amend and args.config is None:
        parser.error("--amend needs --config (the amended CampaignConfig)")
    started = time.time()
    deadline = started + 60 * args.minutes
    lock = _lock(args.work)
    previous = {sig: signal.signal(sig, _on_term) for sig in (signal.SIGTERM, signal.SIGINT)}
    _STOP.update(training=False, requested=False)
    try:
        _log(f"campaign start: {args.minutes} min, phase {args.phase}; data {summary(args.root)}")
        code = 0
        if args.phase in ("all", "data"):
            data_phase(deadline, args, started)
        if args.phase == "train" or (args.phase == "all" and time.time() < deadline):
            n = summary(args.root)["reactions_ok"]
            if args.phase == "all" and n < args.train_after:
                _log(f"train: waits for --train-after {args.train_after} labelled reactions ({n} so far)")
            else:
                _STOP["training"] = True
                code = train_phase(deadline, args)
        _log(f"campaign stop: data {summary(args.root)}")
        return code
    finally:
        _STOP["training"] = False
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lock.close()


if __name__ == "__main__":
    sys.exit(main())
