"""Energy+force data at scale: many cheap GFN2-xTB labels around the reactions of the Hessian shards.

A Hessian costs 6N gradients, a gradient milliseconds; so the backbone learns energies and forces on
about 500 extra geometries per reaction while the Hessian losses keep to the committed Hessian
subset (``data/campaign/shards``). Candidates are drawn per reaction, seeded by the reaction id, so a
rerun draws the same geometries:

- thermal normal-mode samples around the reactant minimum, the product minimum and the TS region
  (climbing image and the stored ``ts_region`` geometries), from the stored xTB Hessians at each of
  ``temperatures`` (classical amplitudes for modes stiffer than ``sampling.MIN_CURVATURE``; soft and
  imaginary modes get a small fixed ``sqrt(T)``-scaled amplitude, see ``thermal_displacements``);
- Gaussian Cartesian perturbations of every NEB image and NEB snapshot, sigma ``sqrt(T)``-scaled
  (rigid-body parts of the noise are left in: the model is invariant to them).

Rejected: atoms closer than ``min_distance``, or a geometry falling into more pieces than its source
(bonds counted at ``bond_scale`` x covalent radii in the source, ``fragment_scale`` x in the sample,
so only a wildly stretched bond counts as a new fragment). Work is done one reaction at a time and
staged under ``.partial/``; full groups of ``reactions_per_file`` reactions (in source order) are
packed into ``ef_NNNN.h5`` files listed with their SHA-256 in ``manifest.json`` (written last), so an
interrupted run resumed with the same arguments writes the same files as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
from ase.data import covalent_radii
from scipy.sparse.csgraph import connected_components
from tqdm import tqdm

from ..chem.reference import XTBReference
from ..chem.units import KB_EV_PER_K
from ..chem.vibrations import atom_masses, eckart_project, mass_weight
from ..common.files import sha256_of
from .sampling import MIN_CURVATURE

# ``aiida_hip.hip.data`` (DatasetError, Sample) pulls in torch: imported where used, so the spawned
# xTB workers start in a fraction of a second.
if TYPE_CHECKING:
    from ..hip.data import Sample

EF_VERSION = 1
MANIFEST = "manifest.json"
PARTIAL = ".partial"
KIND_DTYPE = "S24"
LEVEL_OF_THEORY = "GFN2-xTB (tblite), analytic gradient"
REGENERATE = (
    "python -m aiida_hip.dataset.ef_samples --root data/campaign/shards --out data/campaign/ef --workers 2 --minutes 60"
)


@dataclass(frozen=True)
class EFSettings:
    """Everything that decides the files' content (``workers`` and deadlines do not)."""

    per_reaction: int = 500
    temperatures: tuple[float, ...] = (300.0, 600.0, 1000.0, 2000.0)
    thermal_fraction: float = 0.6  # of per_reaction; the rest are perturbed NEB images/snapshots
    ts_weight: float = 2.0  # TS region's thermal share relative to each minimum's
    shift_1000k: float = 0.5  # A, largest atom shift of a thermal sample at 1000 K (x sqrt(T/1000))
    soft_1000k: float = 0.1  # A, Cartesian RMS size of a soft or imaginary mode at 1000 K (x sqrt(T/1000))
    sigma_1000k: float = 0.05  # A per Cartesian component at 1000 K (x sqrt(T/1000))
    min_distance: float = 0.6  # A
    bond_scale: float = 1.3  # bonded in the source: d < bond_scale * (r_i + r_j)
    fragment_scale: float = 1.6  # still bonded in a sample: d < fragment_scale * (r_i + r_j)
    reactions_per_file: int = 8
    grid_bits: int = 10  # positions are snapped to multiples of 2^-grid_bits A before labelling
    seed: int = 20261125


def _settings_json(settings: EFSettings) -> dict:
    return json.loads(json.dumps(asdict(settings)))


def _rng(settings: EFSettings, rid: str, block: str) -> np.random.Generator:
    """An independent stream per reaction and block, so adding a block never shifts another."""
    digest = hashlib.sha256(f"{settings.seed}:{rid}:{block}".encode()).hexdigest()
    return np.random.default_rng(int(digest[:16], 16))


def allocate(total: int, weights) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder, ties to the first)."""
    w = np.asarray(weights, dtype=np.float64)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts.tolist()


def fragments(numbers: np.ndarray, positions: np.ndarray, scale: float) -> int:
    """Connected pieces of the bond graph (bond: ``d < scale`` x sum of covalent radii)."""

    radii = covalent_radii[np.asarray(numbers, dtype=int)]
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    return int(connected_components(d < scale * (radii[:, None] + radii[None]), directed=False)[0])


def acceptable(numbers: np.ndarray, sample: np.ndarray, source: np.ndarray, settings: EFSettings) -> bool:
    """No atoms closer than ``min_distance`` and no more pieces than the source geometry."""
    d = np.linalg.norm(sample[:, None] - sample[None], axis=-1) + 1e3 * np.eye(len(numbers))
    if d.min() < settings.min_distance:
        return False
    return fragments(numbers, sample, settings.fragment_scale) <= fragments(numbers, source, settings.bond_scale)


def _anchors(record: dict) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """(positions, Hessian) to sample around: reactant, product and TS region.

    The TS is the highest stored NEB image (the climbing image); the stored ``ts_region`` samples
    around it are TS anchors too. Minima are the first and last NEB images.
    """
    kinds, pos, hess = record["kinds"], record["positions"], record["hessians"]
    images = [i for i, k in enumerate(kinds) if k == "neb_image"]
    if not images:
        return {}
    top = max(images, key=lambda i: record["energy"][i])
    ts = [top] + [i for i, k in enumerate(kinds) if k == "ts_region"]
    groups = {"reactant": [images[0]], "product": [images[-1]], "ts": ts}
    return {name: [(pos[i], hess[i]) for i in idx] for name, idx in groups.items()}


def _modes(numbers: np.ndarray, pos: np.ndarray, hess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (eV/A^2/amu) and Cartesian displacement vectors (3N, K) of the vibrations."""

    masses = atom_masses(numbers)
    projected, basis = eckart_project(mass_weight(hess, masses), pos, masses)
    vals, vecs = np.linalg.eigh(projected)
    return vals, (basis.T @ vecs) / np.sqrt(np.repeat(masses, 3))[:, None]


def thermal_displacements(
    numbers: np.ndarray, pos: np.ndarray, hess: np.ndarray, count: int, temp: float, rng, settings: EFSettings
) -> list[np.ndarray]:
    """``count`` accepted harmonic samples around ``pos`` at ``temp`` K (drawn up to twice over).

    A mode of curvature above ``MIN_CURVATURE`` (~130 cm^-1) gets its classical amplitude
    N(0, kT/lambda) in mass-weighted coordinates. Softer and imaginary modes (torsions, loose
    fragments, the reaction coordinate at a TS) would get huge or undefined harmonic amplitudes, so
    they get a fixed Cartesian RMS size ``soft_1000k`` x sqrt(T/1000) instead. A sample moving an
    atom more than ``shift_1000k`` x sqrt(T/1000) A is scaled down to that.
    """

    vals, cart = _modes(numbers, pos, hess)
    scale = np.sqrt(temp / 1000.0)
    stiff = vals > MIN_CURVATURE
    sizes = np.where(stiff, np.sqrt(KB_EV_PER_K * temp / np.where(stiff, vals, 1.0)), 0.0)
    sizes[~stiff] = settings.soft_1000k * scale / np.linalg.norm(cart[:, ~stiff], axis=0)
    out = []
    for _ in range(2 * count):
        if len(out) >= count:
            break
        shift = (cart @ (rng.normal(size=sizes.size) * sizes)).reshape(-1, 3)
        largest = np.linalg.norm(shift, axis=1).max()
        if largest > settings.shift_1000k * scale:
            shift *= settings.shift_1000k * scale / largest
        if acceptable(numbers, pos + shift, pos, settings):
            out.append(pos + shift)
    return out


def thermal_candidates(record: dict, count: int, settings: EFSettings) -> list[tuple[str, np.ndarray]]:
    """``count`` normal-mode samples: reactant/product/TS by 1/1/``ts_weight``, temperatures evenly,
    anchors of a group evenly."""
    anchors = _anchors(record)
    if not anchors:
        return []
    names, out = list(anchors), []
    weights = [settings.ts_weight if n == "ts" else 1.0 for n in names]
    for name, group_count in zip(names, allocate(count, weights), strict=True):
        per_t = allocate(group_count, [1.0] * len(settings.temperatures))
        for temp, t_count in zip(settings.temperatures, per_t, strict=True):
            per_anchor = allocate(t_count, [1.0] * len(anchors[name]))
            for a, ((pos, hess), c) in enumerate(zip(anchors[name], per_anchor, strict=True)):
                if c:
                    rng = _rng(settings, record["rid"], f"thermal:{name}:{a}:{temp:g}")
                    kept = thermal_displacements(record["numbers"], pos, hess, c, temp, rng, settings)
                    out += [(f"thermal_{name}_{temp:g}K", x) for x in kept]
    return out


def perturbed_candidates(
    record: dict, count: int, settings: EFSettings, tries: int = 5
) -> list[tuple[str, np.ndarray]]:
    """``count`` Gaussian perturbations of the NEB images and snapshots, temperatures evenly."""
    numbers, kinds = record["numbers"], record["kinds"]
    sources = [i for i, k in enumerate(kinds) if k in ("neb_image", "neb_snapshot")]
    if not sources:
        return []
    out = []
    per_t = allocate(count, [1.0] * len(settings.temperatures))
    for temp, t_count in zip(settings.temperatures, per_t, strict=True):
        rng = _rng(settings, record["rid"], f"perturb:{temp:g}")
        sigma = settings.sigma_1000k * np.sqrt(temp / 1000.0)
        for j in range(t_count):
            i = sources[j % len(sources)]
            src = record["positions"][i]
            prefix = "neb" if kinds[i] == "neb_image" else "snapshot"
            for _ in range(tries):
                new = src + rng.normal(scale=sigma, size=src.shape)
                if acceptable(numbers, new, src, settings):
                    out.append((f"{prefix}_perturbed_{temp:g}K", new))
                    break
    return out


def ef_candidates(record: dict, settings: EFSettings) -> tuple[list[str], np.ndarray]:
    """Kinds and positions (M, N, 3) of one reaction's candidates: deterministic per id.

    Positions are snapped to a 2^-``grid_bits`` A grid (about 0.001 A) before labelling: exact in
    float32, so the stored positions are exactly the ones xTB saw (no label error), and the zero
    low mantissa bits halve the compressed size of the positions.
    """
    n_thermal = round(settings.per_reaction * settings.thermal_fraction)
    cands = thermal_candidates(record, n_thermal, settings)
    cands += perturbed_candidates(record, settings.per_reaction - n_thermal, settings)
    n = len(record["numbers"])
    grid = 2.0**settings.grid_bits
    positions = np.round(np.array([p for _, p in cands]).reshape(-1, n, 3) * grid) / grid
    return [k for k, _ in cands], positions


def label_reaction(record: dict, settings: EFSettings) -> dict:
    """Candidates of one reaction with GFN2-xTB energy (eV) and forces (eV/A); failures dropped, counted."""

    t0 = time.perf_counter()
    kinds, positions = ef_candidates(record, settings)
    ref = XTBReference(workers=1)
    keep, energy, forces, failed = [], [], [], 0
    for m, pos in enumerate(positions):
        try:
            out = ref.predict(record["numbers"], pos, hessian=None, name=f"{record['rid']} ({kinds[m]} #{m})")
        except Exception:  # SCF not converged, bad geometry: drop it, never the reaction
            failed += 1
            continue
        f = np.asarray(out["forces"], dtype=np.float64)
        if not (np.isfinite(out["energy"]) and np.all(np.isfinite(f)) and np.abs(f).max() < 6e4):  # float16 range
            failed += 1
            continue
        keep.append(m)
        energy.append(float(out["energy"]))
        forces.append(f)
    n = len(record["numbers"])
    return {
        "rid": record["rid"],
        "attrs": record["attrs"],
        "numbers": record["numbers"],
        "kinds": [kinds[m] for m in keep],
        "positions": positions[keep].astype(np.float32).reshape(-1, n, 3),
        "energy": np.array(energy, dtype=np.float64),
        "forces": np.array(forces, dtype=np.float64).reshape(-1, n, 3),
        "candidates": len(kinds),
        "failed": failed,
        "xtb_version": ref.version,
        "seconds": time.perf_counter() - t0,
    }


# --- source: the committed Hessian shards ------------------------------------------------------------


def source_reactions(root: Path) -> list[tuple[str, str]]:
    """(shard file, reaction id) of every labelled reaction, in manifest order (append-only)."""
    from .shards import verify

    root = Path(root)
    out = []
    for shard in verify(root)["shards"]:
        if not shard["ok"]:
            continue
        with h5py.File(root / shard["file"], "r") as h5:
            out += [(shard["file"], rid) for rid in shard["ids"] if h5["reactions"][rid].attrs.get("status") == "ok"]
    return out


def _full_hessians(g, n: int, index: list[int]) -> dict[int, np.ndarray]:
    if "hessian" in g:
        return {i: g["hessian"][i].astype(np.float64) for i in index}
    rows, cols = np.triu_indices(n)
    triu = g["hessian_triu"][()]
    out = {}
    for i in index:
        h = np.zeros((n, n))
        h[rows, cols] = triu[i]
        h[cols, rows] = triu[i]
        out[i] = h
    return out


def read_reaction(root: Path, shard_file: str, rid: str) -> dict:
    """One source reaction: geometries, kinds, energies and the Hessians sampling needs."""
    path = Path(root) / shard_file
    with h5py.File(path, "r") as h5:
        g = h5["reactions"][rid]
        kinds = [k.decode() for k in g["kind"][()]]
        numbers = g["numbers"][()].astype(np.int64)
        need = [i for i, k in enumerate(kinds) if k in ("neb_image", "ts_region")]
        attrs = {k: str(g.attrs[k]) for k in ("split", "reactant_smiles", "product_smiles")}
        record = {
            "rid": rid,
            "numbers": numbers,
            "kinds": kinds,
            "positions": g["positions"][()].astype(np.float64),
            "energy": g["energy"][()].astype(np.float64),
            "hessians": _full_hessians(g, 3 * len(numbers), need),
        }
    record["attrs"] = {**attrs, "source_shard": shard_file, "source_sha256": sha256_of(path)}
    return record


# --- staging, packing and the manifest -----------------------------------------------------------------


def _write_group(h5, result: dict, packed: bool) -> dict:
    """One reaction group; packed: float16 forces, gzip+shuffle. Returns the float16 force error."""
    g = h5.create_group(f"reactions/{result['rid']}")
    ok = len(result["energy"]) > 0
    g.attrs.update(
        {
            **result["attrs"],
            "status": "ok" if ok else "failed",
            "candidates": int(result["candidates"]),
            "failed": int(result["failed"]),
            "level_of_theory": LEVEL_OF_THEORY,
            "xtb_version": result["xtb_version"],
            "units": "positions A, energy eV, forces eV/A",
        }
    )
    g.create_dataset("numbers", data=np.asarray(result["numbers"], dtype=np.int8))
    forces = np.asarray(result["forces"], dtype=np.float64)
    stats = {"f16_max_error": 0.0, "max_abs_force": float(np.abs(forces).max()) if ok else 0.0}
    opts = {"compression": "gzip", "compression_opts": 9, "shuffle": True} if packed and ok else {}
    if packed:
        half = forces.astype(np.float16)
        stats["f16_max_error"] = float(np.abs(half.astype(np.float64) - forces).max()) if ok else 0.0
        forces = half
    g.create_dataset("positions", data=np.asarray(result["positions"], dtype=np.float32), **opts)
    g.create_dataset("energy", data=np.asarray(result["energy"], dtype=np.float64), **opts)
    g.create_dataset("forces", data=forces, **opts)
    g.create_dataset("kind", data=np.array(result["kinds"], dtype=KIND_DTYPE), **opts)
    return stats


def _read_group(g, rid: str) -> dict:
    return {
        "rid": rid,
        "attrs": {
            k: str(g.attrs[k]) for k in ("split", "reactant_smiles", "product_smiles", "source_shard", "source_sha256")
        },
        "numbers": g["numbers"][()],
        "kinds": [k.decode() for k in g["kind"][()]],
        "positions": g["positions"][()],
        "energy": g["energy"][()],
        "forces": g["forces"][()].astype(np.float64),
        "candidates": int(g.attrs["candidates"]),
        "failed": int(g.attrs["failed"]),
        "xtb_version": str(g.attrs["xtb_version"]),
    }


def stage(out: Path, result: dict) -> Path:
    """Keep one labelled reaction under ``.partial/`` (full precision) until its file is packed."""
    folder = Path(out) / PARTIAL
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result['rid']}.h5"
    tmp = folder / f"{result['rid']}.h5.tmp"
    with h5py.File(tmp, "w") as h5:
        _write_group(h5, result, packed=False)
    os.replace(tmp, path)
    return path


def staged_ids(out: Path) -> set[str]:
    folder = Path(out) / PARTIAL
    return {p.name[: -len(".h5")] for p in folder.glob("rxn_*.h5")} if folder.is_dir() else set()


def read_ef_manifest(out: Path, settings: EFSettings | None = None) -> dict:
    """The manifest under ``out`` (a new one if absent); refuses files made with other settings."""
    from ..hip.data import DatasetError

    path = Path(out) / MANIFEST
    if not path.is_file():
        return {"version": EF_VERSION, "settings": _settings_json(settings or EFSettings()), "files": []}
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from exc
    if manifest.get("version") != EF_VERSION:
        raise DatasetError(f"{path} has version {manifest.get('version')}, this code writes {EF_VERSION}: regenerate")
    if settings is not None and manifest["settings"] != _settings_json(settings):
        raise DatasetError(
            f"{path} was generated with settings {manifest['settings']}, not {_settings_json(settings)}: "
            "use the same settings or another --out"
        )
    return manifest


def _write_manifest(out: Path, manifest: dict) -> None:
    tmp = Path(out) / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, Path(out) / MANIFEST)


def packed_ids(manifest: dict) -> set[str]:
    return {rid for entry in manifest["files"] for rid in entry["ids"]}


def pack(out: Path, ids: list[str], settings: EFSettings) -> dict:
    """Pack staged reactions ``ids`` (in this order) into the next ``ef_NNNN.h5``; manifest last."""
    out = Path(out)
    manifest = read_ef_manifest(out, settings)
    name = f"ef_{len(manifest['files']):04d}.h5"
    tmp = out / (name + ".tmp")
    entry = {"file": name, "ids": list(ids), "geometries": 0, "failed": 0, "f16_max_error": 0.0, "max_abs_force": 0.0}
    with h5py.File(tmp, "w", libver=("v110", "v110")) as dst:  # compact metadata; HDF5 >= 1.10 reads it
        dst.attrs["settings"] = json.dumps(_settings_json(settings), sort_keys=True)
        dst.attrs["packed"] = "energy float64, positions float32, forces float16; gzip+shuffle"
        dst.create_group("reactions")
        for rid in ids:
            with h5py.File(out / PARTIAL / f"{rid}.h5", "r") as src:
                result = _read_group(src["reactions"][rid], rid)
            stats = _write_group(dst, result, packed=True)
            entry["geometries"] += len(result["energy"])
            entry["failed"] += result["failed"]
            entry["f16_max_error"] = max(entry["f16_max_error"], stats["f16_max_error"])
            entry["max_abs_force"] = max(entry["max_abs_force"], stats["max_abs_force"])
    os.replace(tmp, out / name)
    entry = {"file": name, "sha256": sha256_of(out / name), **{k: v for k, v in entry.items() if k != "file"}}
    manifest["files"].append(entry)
    _write_manifest(out, manifest)
    for rid in ids:
        (out / PARTIAL / f"{rid}.h5").unlink(missing_ok=True)
    if not any((out / PARTIAL).iterdir()):
        (out / PARTIAL).rmdir()
    return entry


def pack_ready(out: Path, order: list[str], settings: EFSettings) -> list[dict]:
    """Pack every full group of ``reactions_per_file`` staged reactions at the head of ``order``,
    and the short tail once all of ``order`` is staged. File boundaries depend on the order only."""
    entries = []
    while True:
        pending = [rid for rid in order if rid not in packed_ids(read_ef_manifest(out, settings))]
        if not pending:
            return entries
        staged = staged_ids(out)
        head = pending[: settings.reactions_per_file]
        if not all(rid in staged for rid in head):
            return entries
        if len(head) < settings.reactions_per_file and not all(rid in staged for rid in pending):
            return entries
        entries.append(pack(out, head, settings))


# --- the run -------------------------------------------------------------------------------------------


def _init_worker() -> None:
    # Before tblite loads: one OpenMP thread per process (and spawn, never fork: tblite can hang).
    os.environ["OMP_NUM_THREADS"] = "1"


def _results(tasks: list[tuple[str, str]], root: Path, settings: EFSettings, workers: int, stop: Callable[[], bool]):
    """Labelled reactions as they finish; no new reaction starts once ``stop()`` is true.

    Always in spawned single-threaded processes (even for ``workers=1``): the labels are then
    bit-for-bit reproducible, which a resumed run's identical file hashes rely on (a multi-threaded
    SCF sums in varying order and differs in the last digits).
    """
    if not tasks:
        return

    queue = list(tasks)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max(1, workers), mp_context=context, initializer=_init_worker) as pool:
        running = set()
        while queue or running:
            while queue and len(running) < max(1, workers) and not stop():
                shard_file, rid = queue.pop(0)
                running.add(pool.submit(label_reaction, read_reaction(root, shard_file, rid), settings))
            if not running:
                return
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                yield fut.result()


def _ignore_partial(out: Path) -> None:
    gitignore = Path(out) / ".gitignore"
    if not gitignore.is_file():
        gitignore.write_text(f"{PARTIAL}/\n*.tmp\n")


def generate_ef(
    root: Path,
    out: Path,
    settings: EFSettings | None = None,
    workers: int = 1,
    minutes: float | None = None,
    max_reactions: int | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """Label and pack (or continue) the E+F data of the shards under ``root`` into ``out``.

    ``max_reactions`` caps the reactions not yet packed that this call considers (source order);
    ``minutes`` and ``stop_after`` (reactions labelled in this call) stop it cleanly after the
    reaction(s) in progress. Returns counts and the labelling rate.
    """

    settings = settings or EFSettings()
    root, out = Path(root), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _ignore_partial(out)
    manifest = read_ef_manifest(out, settings)
    _write_manifest(out, manifest)  # pins the settings before anything is staged
    done = packed_ids(manifest)
    for rid in staged_ids(out) & done:  # a crash between manifest and clean-up
        (out / PARTIAL / f"{rid}.h5").unlink()
    todo = [(f, rid) for f, rid in source_reactions(root) if rid not in done][:max_reactions]
    order = [rid for _, rid in todo]
    staged = staged_ids(out)
    tasks = [(f, rid) for f, rid in todo if rid not in staged]
    deadline = None if minutes is None else time.monotonic() + 60.0 * minutes
    counts = Counter(reactions=0, geometries=0, failed=0, candidates=0, files=0)
    t0 = time.perf_counter()

    def stop() -> bool:
        late = deadline is not None and time.monotonic() >= deadline
        return late or (stop_after is not None and counts["reactions"] >= stop_after)

    counts["files"] += len(pack_ready(out, order, settings))  # staged by an earlier, interrupted run
    bar = tqdm(total=len(tasks), disable=not progress, desc="E+F reactions", unit="rxn")
    for result in _results(tasks, root, settings, workers, stop):
        stage(out, result)
        counts.update(reactions=1, geometries=len(result["energy"]), failed=result["failed"])
        counts["candidates"] += result["candidates"]
        counts["files"] += len(pack_ready(out, order, settings))
        bar.update(1)
        bar.set_postfix(geom=counts["geometries"], per_s=f"{counts['geometries'] / (time.perf_counter() - t0):.0f}")
    bar.close()
    seconds = time.perf_counter() - t0
    manifest = read_ef_manifest(out, settings)
    return {
        **counts,
        "seconds": seconds,
        "geometries_per_second": counts["geometries"] / seconds if seconds > 0 else 0.0,
        "remaining": len(set(order) - staged_ids(out) - packed_ids(manifest)),
        "staged": len(staged_ids(out)),
        "packed_reactions": len(packed_ids(manifest)),
        "packed_geometries": sum(e["geometries"] for e in manifest["files"]),
        "bytes": sum((out / e["file"]).stat().st_size for e in manifest["files"]),
    }


# --- reading ---------------------------------------------------------------------------------------------


def verify_ef(root: Path) -> dict:
    """The manifest, after checking that every listed file exists and matches its SHA-256."""
    from ..hip.data import DatasetError
    from .shards import check_listed  # (the shards' reader loads torch)

    root = Path(root)
    if not (root / MANIFEST).is_file():
        raise DatasetError(f"no E+F data at {root}: {MANIFEST} is missing")
    manifest = read_ef_manifest(root)
    missing = [f["file"] for f in manifest["files"] if not (root / f["file"]).is_file()]
    if missing:
        raise DatasetError(
            f"{len(missing)} E+F file(s) listed in {root / MANIFEST} are not here ({missing[0]}, ...): they live in "
            "the repository's history; restore them with `python -m aiida_hip.dataset.archive restore`"
        )
    check_listed(root, manifest["files"], "E+F file", MANIFEST)
    return manifest


def _samples_of(path: Path, split: str | None) -> list[Sample]:
    from ..hip.data import DatasetError, Sample

    samples = []
    try:
        with h5py.File(path, "r") as h5:
            for rid, g in h5["reactions"].items():
                if g.attrs.get("status") != "ok" or (split is not None and g.attrs.get("split") != split):
                    continue
                numbers = g["numbers"][()].astype(np.int64)
                pos, energy, forces = g["positions"][()], g["energy"][()], g["forces"][()]
                kinds = [k.decode() for k in g["kind"][()]]
                for m in range(len(energy)):
                    f = forces[m].astype(np.float64)
                    samples.append(Sample(numbers, pos[m].astype(np.float64), float(energy[m]), f, None, rid, kinds[m]))
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"E+F file {path} is not a readable aiida-hip E+F file: {exc}") from exc
    return samples


def load_ef_samples(root: Path, split: str | None = None) -> list[Sample]:
    """Every E+F geometry of ``split`` (``None``: all) as :class:`Sample` with ``hessian=None``.

    Every file's SHA-256 is checked first; a missing, corrupted or truncated file raises
    :class:`DatasetError` naming it.
    """
    root = Path(root)
    samples: list[Sample] = []
    for entry in verify_ef(root)["files"]:
        samples += _samples_of(root / entry["file"], split)
    return samples


# --- card and entry point ----------------------------------------------------------------------------------


def _ef_stats(root: Path, manifest: dict) -> dict:
    stats = {"kinds": Counter(), "splits": Counter(), "reactions": Counter(), "fmax": [], "atoms": []}
    for entry in manifest["files"]:
        with h5py.File(root / entry["file"], "r") as h5:
            for g in h5["reactions"].values():
                if g.attrs.get("status") != "ok":
                    continue
                split, n = str(g.attrs["split"]), len(g["energy"])
                stats["reactions"][split] += 1
                stats["splits"][split] += n
                stats["kinds"].update(k.decode() for k in g["kind"][()])
                stats["atoms"].append(len(g["numbers"]))
                f = g["forces"][()].astype(np.float64)
                stats["fmax"] += np.linalg.norm(f, axis=-1).max(axis=-1).tolist()
    return stats


def write_ef_card(root: Path) -> Path:
    """``CARD.md`` beside the manifest: counts by kind and split, bytes, float16 error, regeneration."""
    root = Path(root)
    manifest = verify_ef(root)
    files, s = manifest["files"], _ef_stats(root, manifest)
    total = sum(s["splits"].values())
    size = sum((root / e["file"]).stat().st_size for e in files)
    fmax = np.array(s["fmax"] or [0.0])
    lines = [
        "# Dataset card: energy+force geometries (GFN2-xTB)",
        "",
        f"Level of theory: {LEVEL_OF_THEORY}; energies eV (float64), positions A (float32, exactly the ones "
        "labelled), forces eV/A (float16). No Hessians: the Hessian subset is `data/campaign/shards`.",
        "",
        f"- reactions: {sum(s['reactions'].values())} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(s["reactions"].items()))
        + "); split copied from the Hessian shards (by reactant molecule)",
        f"- geometries: {total} (" + ", ".join(f"{k} {v}" for k, v in sorted(s["splits"].items())) + ")",
        f"- xTB failures dropped: {sum(e['failed'] for e in files)}",
        f"- files: {len(files)}, {size} bytes ({size / max(total, 1):.0f} bytes per geometry)",
        f"- float16 force rounding: max {max((e['f16_max_error'] for e in files), default=0.0):.2e} eV/A "
        f"at the largest force component, {max((e['max_abs_force'] for e in files), default=0.0):.1f} eV/A; "
        "relative error <= 4.9e-4 (float16 rounding)",
        f"- largest atomic force per geometry (eV/A): median {np.median(fmax):.2f}, "
        f"99 % {np.percentile(fmax, 99):.2f}, max {fmax.max():.2f}",
        "",
        "| kind | geometries |",
        "| --- | ---: |",
        *[f"| {k} | {v} |" for k, v in sorted(s["kinds"].items())],
        "",
        "Settings: `" + json.dumps(manifest["settings"], sort_keys=True) + "`",
        "",
        f"Files are listed with their SHA-256 in `{MANIFEST}` and checked on every load (`load_ef_samples`). "
        "Sampling is seeded per reaction id, so a rerun draws the same geometries; labels agree to the SCF "
        f"tolerance. Regenerate (resumable, one reaction at a time): `{REGENERATE}`.",
    ]
    path = root / "CARD.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data/campaign/shards"), help="committed Hessian shards")
    parser.add_argument("--out", type=Path, default=Path("data/campaign/ef"), help="E+F files and manifest")
    parser.add_argument("--workers", type=int, default=1, help="spawned xTB processes, one thread each")
    parser.add_argument("--minutes", type=float, default=None, help="stop after the reaction in progress")
    parser.add_argument("--max-reactions", type=int, default=None, help="at most this many unpacked reactions")
    parser.add_argument("--per-reaction", type=int, default=EFSettings.per_reaction, help="candidates per reaction")
    parser.add_argument("--reactions-per-file", type=int, default=EFSettings.reactions_per_file)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    settings = EFSettings(per_reaction=args.per_reaction, reactions_per_file=args.reactions_per_file)
    summary = generate_ef(
        args.root, args.out, settings, args.workers, args.minutes, args.max_reactions, not args.no_progress
    )
    if summary["packed_reactions"]:
        summary["card"] = str(write_ef_card(args.out))
    g = max(summary["packed_geometries"], 1)
    print(
        f"labelled {summary['reactions']} reactions, {summary['geometries']} geometries "
        f"({summary['failed']} xTB failures dropped) in {summary['seconds']:.0f} s = "
        f"{summary['geometries_per_second']:.1f} geometries/s; packed {summary['packed_reactions']} reactions, "
        f"{summary['packed_geometries']} geometries, {summary['bytes']} bytes ({summary['bytes'] / g:.0f} B/geometry); "
        f"staged {summary['staged']}, remaining {summary['remaining']}"
    )
    return summary


if __name__ == "__main__":
    main()
