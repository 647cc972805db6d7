"""``aiida-hip evaluate``: the seed's Table 1 on held-out reactions, HIP vs the autograd Hessian.

Metrics (after Eckart projection of the mass-weighted Hessian where the seed does so): Hessian MAE
(eV/A^2, Cartesian), eigenvalue MAE and lambda_1 MAE (eV/A^2/amu, projected mass-weighted), |cosine|
between the lowest eigenvectors, time per molecule; plus the imaginary-mode count on transition-state
region and minimum geometries. Lives here, not in ``aiida_hip.hip``, because it needs the Eckart
projection of ``aiida_hip.chem``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..chem.vibrations import IMAGINARY_THRESHOLD, analyse, atom_masses, eckart_project, mass_weight

COLUMNS = ("hessian_mae", "eigenvalue_mae", "cossim_v1", "lambda1_mae", "time_per_molecule_s", "imag_count_accuracy")
UNITS = {
    "hessian_mae": "eV/A^2",
    "eigenvalue_mae": "eV/A^2/amu",
    "cossim_v1": "unitless",
    "lambda1_mae": "eV/A^2/amu",
    "time_per_molecule_s": "s",
    "imag_count_accuracy": "fraction",
}


def _projected(numbers, positions, hessian) -> tuple[np.ndarray, np.ndarray]:
    masses = atom_masses(numbers)
    proj, _ = eckart_project(mass_weight(hessian, masses), positions, masses)
    vals, vecs = np.linalg.eigh(proj)
    return vals, vecs


def compare(numbers, positions, pred: np.ndarray, ref: np.ndarray) -> dict:
    """Per-molecule metrics of a predicted Hessian against the reference."""
    pv, pvec = _projected(numbers, positions, pred)
    rv, rvec = _projected(numbers, positions, ref)
    return {
        "hessian_mae": float(np.abs(pred - ref).mean()),
        "eigenvalue_mae": float(np.abs(pv - rv).mean()),
        "cossim_v1": float(abs(pvec[:, 0] @ rvec[:, 0])),
        "lambda1_mae": float(abs(pv[0] - rv[0])),
    }


def evaluate(
    model,
    samples,
    modes=("predicted", "autograd"),
    max_samples: int | None = None,
    imaginary_threshold: float = IMAGINARY_THRESHOLD,
) -> dict:
    """Table rows for each Hessian mode, plus imaginary-mode counts on TS-region and minimum geometries."""
    if max_samples is not None and len(samples) > max_samples:
        idx = np.random.default_rng(0).choice(len(samples), max_samples, replace=False)
        samples = [samples[i] for i in sorted(idx)]
    table, counts = {}, {}
    for mode in modes:
        rows, seconds, imag = [], 0.0, {"ts": [0, 0], "minimum": [0, 0]}
        for s in samples:
            t0 = time.perf_counter()
            pred = model.predict(s.numbers, s.positions, hessian=mode)["hessian"]
            seconds += time.perf_counter() - t0
            rows.append(compare(s.numbers, s.positions, pred, s.hessian))
            ref_n = analyse(s.numbers, s.positions, s.hessian, imaginary_threshold=imaginary_threshold).n_imaginary
            pred_n = analyse(s.numbers, s.positions, pred, imaginary_threshold=imaginary_threshold).n_imaginary
            rows[-1]["imag_match"] = float(ref_n == pred_n)
            group = "ts" if ref_n == 1 else "minimum" if ref_n == 0 else None
            rows[-1]["group"] = group
            if group:
                imag[group][0] += int(ref_n == pred_n)
                imag[group][1] += 1
        table[mode] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("imag_match", "group")}
        at_ts = [r["cossim_v1"] for r in rows if r["group"] == "ts"]
        table[mode]["cossim_v1_ts"] = float(np.mean(at_ts)) if at_ts else None
        table[mode]["time_per_molecule_s"] = seconds / len(samples)
        table[mode]["imag_count_accuracy"] = float(np.mean([r["imag_match"] for r in rows]))
        counts[mode] = {g: {"correct": c, "total": t} for g, (c, t) in imag.items()}
    return {
        "table": table,
        "imaginary_counts": counts,
        "n_samples": len(samples),
        "n_reactions": len({s.reaction for s in samples}),
        "units": UNITS,
    }


def markdown(result: dict, title: str) -> str:
    lines = [
        f"### {title}",
        "",
        f"{result['n_samples']} geometries from {result['n_reactions']} held-out reactions.",
        "",
        "| Hessian | " + " | ".join(f"{c} [{UNITS[c]}]" for c in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for mode, row in result["table"].items():
        lines.append(f"| {mode} | " + " | ".join(f"{row[c]:.4g}" for c in COLUMNS) + " |")
    lines += ["", "Imaginary-mode count correct (reference geometries with 1 / 0 imaginary modes):", ""]
    for mode, groups in result["imaginary_counts"].items():
        ts, mn = groups["ts"], groups["minimum"]
        lines.append(
            f"- {mode}: transition-state region {ts['correct']}/{ts['total']}, minima {mn['correct']}/{mn['total']}"
        )
    return "\n".join(lines) + "\n"


def write(result: dict, output: Path, title: str) -> None:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(result, indent=2))
    output.with_suffix(".md").write_text(markdown(result, title))


def evaluation_subset(samples: list, max_samples: int | None) -> list:
    """The geometries :func:`evaluate` would pick (same seeded choice)."""
    if max_samples is not None and len(samples) > max_samples:
        idx = np.random.default_rng(0).choice(len(samples), max_samples, replace=False)
        return [samples[i] for i in sorted(idx)]
    return list(samples)


def model_metrics(model, samples: list, batch: int = 16) -> dict:
    """Force MAE, HIP-Hessian metrics and imaginary-count accuracies of ``model`` on ``samples``: the
    model-quality table (the campaign's promotion and ``aiida-hip evaluate --baseline``)."""
    errors = []
    for start in range(0, len(samples), batch):
        chunk = samples[start : start + batch]
        out = model.predict_batch([(s.numbers, s.positions) for s in chunk], hessian=None)
        errors += [np.abs(o["forces"] - s.forces).reshape(-1) for o, s in zip(out, chunk, strict=True)]
    result = evaluate(model, samples, modes=("predicted",))
    row = result["table"]["predicted"]
    counts = result["imaginary_counts"]["predicted"]

    def accuracy(group: str) -> float | None:
        c = counts[group]
        return c["correct"] / c["total"] if c["total"] else None

    return {
        "force_mae": float(np.concatenate(errors).mean()),
        "hessian_mae": row["hessian_mae"],
        "cossim_v1": row["cossim_v1"],
        "cossim_v1_ts": row["cossim_v1_ts"],
        "eigenvalue_mae": row["eigenvalue_mae"],
        "imag_accuracy_minima": accuracy("minimum"),
        "imag_accuracy_ts": accuracy("ts"),
        "imag_counts": counts,
        "n_samples": result["n_samples"],
        "n_reactions": result["n_reactions"],
    }


#: the model-quality targets (issue "A better HIP model on 2 CPU cores"), for the comparison table
TARGETS = {
    "force_mae": 0.06,
    "hessian_mae": 0.15,
    "cossim_v1_ts": 0.75,
    "imag_accuracy_ts": 0.6,
    "imag_accuracy_minima": 0.7,
}


def comparison_markdown(metrics: dict[str, dict]) -> str:
    """One row per checkpoint (all evaluated on the same geometries), the targets last."""

    def count(m: dict, group: str) -> str:
        c = m["imag_counts"][group]
        return f"{c['correct']}/{c['total']}"

    def num(value, spec=".3f") -> str:
        return "-" if value is None else format(value, spec)

    lines = [
        "| checkpoint | force MAE [eV/A] | Hessian MAE [eV/A^2] | CosSim(v1) at TSs | TSs with one imaginary mode "
        "| minima with none |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        lines.append(
            f"| {name} | {num(m['force_mae'])} | {num(m['hessian_mae'])} | {num(m['cossim_v1_ts'], '.2f')} | "
            f"{count(m, 'ts')} | {count(m, 'minimum')} |"
        )
    t = TARGETS
    lines.append(
        f"| target | <= {t['force_mae']} | <= {t['hessian_mae']} | >= {t['cossim_v1_ts']} | "
        f">= {t['imag_accuracy_ts']:.0%} | >= {t['imag_accuracy_minima']:.0%} |"
    )
    return "\n".join(lines) + "\n"
