"""``aiida-hip data generate``: reactions -> xTB paths -> sampled geometries -> xTB labels -> HDF5.

Resumable: every finished (or skipped) reaction is a group in the HDF5 file, written by the parent
process only; a restart skips them. Workers are spawned processes, one thread each.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from ..chem.reference import XTBReference
from .paths import SkipReaction, endpoints, neb_path
from .reactions import enumerate_reactions, read_smiles_file
from .sampling import normal_mode_samples

MOLECULES = Path(__file__).with_name("molecules.smi")
SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))


@dataclass(frozen=True)
class GenerationSettings:
    seed: int = 20261125
    max_reactions_per_molecule: int = 24
    max_atoms: int = 25
    min_atoms: int = 4
    neb_images: int = 9
    neb_fmax: float = 0.15
    neb_steps: int = 250
    # eV above the reactant (highest NEB image); paths above it are skipped before any Hessian is paid for.
    # The first 45 shards were labelled at 8 eV (median barrier 4.8 eV: mostly concerted eliminations that
    # nobody screens); users' reactions mostly lie at 0.5-3.5 eV at this level, so new labels stop at 4 eV.
    max_barrier: float = 4.0
    ts_samples: int = 10
    minimum_samples: int = 4
    snapshot_every: int = 60
    fd_step: float = 5e-3


def split_of(reactant_smiles: str, seed: int) -> str:
    """Train/val/test by reactant molecule (hash with the seed): every reaction of a molecule together."""
    h = int(hashlib.sha256(f"{seed}:{reactant_smiles}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    acc = 0.0
    for name, frac in SPLITS:
        acc += frac
        if h <= acc:
            return name
    return SPLITS[-1][0]


def reaction_id(key: str) -> str:
    return "rxn_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def process_reaction(reaction, settings: GenerationSettings, seed: int) -> dict:
    """Everything for one reaction, in a worker: geometries, labels and provenance (no file I/O)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before tblite (OpenMP) loads, on the first xTB call
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    numbers = np.array(reaction.numbers)
    try:
        r_pos, p_pos, e_r, e_p = endpoints(reaction, seed)
        images, energies, snapshots = neb_path(
            numbers, r_pos, p_pos, settings.neb_images, settings.neb_fmax, settings.neb_steps, settings.snapshot_every
        )
    except SkipReaction as exc:
        return {"status": "skipped", "reason": str(exc)}
    barrier = float(energies.max() - energies[0])
    if barrier > settings.max_barrier:
        return {"status": "skipped", "reason": f"NEB barrier {barrier:.2f} eV > {settings.max_barrier} eV"}
    ts_index = int(np.argmax(energies))
    ref = XTBReference(workers=1, fd_step=settings.fd_step)
    geoms: list[tuple[str, np.ndarray]] = [("neb_image", p) for p in images]
    geoms += [("neb_snapshot", p) for p in snapshots]
    labels = []

    def label(kind: str, pos: np.ndarray) -> dict | None:
        try:
            out = ref.predict(numbers, pos, name=f"{reaction.key} ({kind})")
        except Exception:
            return None
        return {"kind": kind, "positions": pos, **out}

    for kind, pos in geoms:
        res = label(kind, pos)
        if res is not None:
            labels.append(res)
    # Weight up the transition-state region: thermal samples around the climbing image, and fewer
    # around both minima.
    anchors = [
        (ts_index, "ts_region", settings.ts_samples),
        (0, "reactant_region", settings.minimum_samples),
        (len(images) - 1, "product_region", settings.minimum_samples),
    ]
    for index, kind, count in anchors:
        anchor = next((x for x in labels if x["kind"] == "neb_image" and x["positions"] is images[index]), None)
        if anchor is None:
            continue
        for pos in normal_mode_samples(numbers, images[index], anchor["hessian"], count, rng):
            res = label(kind, pos)
            if res is not None:
                labels.append(res)
    if not labels:
        return {"status": "skipped", "reason": "no geometry could be labelled"}
    return {
        "status": "ok",
        "numbers": numbers,
        "kinds": [x["kind"] for x in labels],
        "positions": np.array([x["positions"] for x in labels]),
        "energy": np.array([x["energy"] for x in labels]),
        "forces": np.array([x["forces"] for x in labels]),
        "hessian": np.array([x["hessian"] for x in labels], dtype=np.float32),
        "ts_index": ts_index,
        "barrier": barrier,
        "reaction_energy": float(e_p - e_r),
        "xtb_version": ref.version,
        "seconds": time.perf_counter() - t0,
    }


def _write(h5, rid: str, reaction, split: str, result: dict, settings: GenerationSettings) -> None:
    g = h5.create_group(f"reactions/{rid}")
    g.attrs.update(
        {
            "status": result["status"],
            "reactant_smiles": reaction.reactant_smiles,
            "product_smiles": reaction.product_smiles,
            "move": reaction.move,
            "broken": json.dumps([list(map(int, b)) for b in reaction.broken]),
            "formed": json.dumps([list(map(int, b)) for b in reaction.formed]),
            "split": split,
            "settings": json.dumps(asdict(settings)),
        }
    )
    if result["status"] != "ok":
        g.attrs["reason"] = result["reason"]
        return
    g.attrs.update(
        {
            "level_of_theory": "GFN2-xTB (tblite), central-difference Hessian",
            "xtb_version": result["xtb_version"],
            "generated_by": "aiida-hip data generate: RDKit embedding, xTB relaxation, CI-NEB (IDPP), "
            "NEB snapshots, thermal normal-mode samples around the climbing image and minima",
            "barrier_ev": result["barrier"],
            "reaction_energy_ev": result["reaction_energy"],
            "ts_index": result["ts_index"],
            "seconds": result["seconds"],
            "units": "positions A, energy eV, forces eV/A, hessian eV/A^2",
        }
    )
    g.create_dataset("numbers", data=result["numbers"].astype(np.int8))
    g.create_dataset("positions", data=result["positions"])
    g.create_dataset("energy", data=result["energy"])
    g.create_dataset("forces", data=result["forces"].astype(np.float32))
    g.create_dataset("hessian", data=result["hessian"], compression="gzip", compression_opts=4, shuffle=True)
    g.create_dataset("kind", data=np.array(result["kinds"], dtype="S16"))


def enumerate_all(settings: GenerationSettings, smiles_file: Path = MOLECULES) -> list:
    rng = np.random.default_rng(settings.seed)
    reactions = []
    for smiles, _ in read_smiles_file(smiles_file):
        for rxn in enumerate_reactions(smiles, rng, settings.max_reactions_per_molecule):
            if settings.min_atoms <= len(rxn.numbers) <= settings.max_atoms:
                reactions.append(rxn)
    return reactions


def generate(
    output: Path,
    settings: GenerationSettings | None = None,
    workers: int = 1,
    limit: int | None = None,
    smiles_file: Path = MOLECULES,
    progress: bool = True,
    split: str | None = None,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> dict:
    """Generate (or continue) the dataset at ``output``; returns counts.

    ``split`` restricts the work to reactions of one split (e.g. ``"test"``: the held-out reactions
    the benchmarks need, minutes instead of hours); the file stays resumable into the full set.
    ``exclude`` holds reaction ids finished elsewhere (the committed shards of the campaign).
    """
    settings = settings or GenerationSettings()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    reactions = enumerate_all(settings, smiles_file)
    if split is not None:
        reactions = [r for r in reactions if split_of(r.reactant_smiles, settings.seed) == split]
    with h5py.File(output, "a") as h5:
        h5.require_group("reactions")
        h5.attrs.setdefault("settings", json.dumps(asdict(settings)))
        done = set(h5["reactions"].keys()) | set(exclude)
    todo = [(reaction_id(r.key), r) for r in reactions if reaction_id(r.key) not in done]
    # Random (seeded) order, so a dataset stopped part-way still covers every element and molecule.
    todo = [todo[i] for i in np.random.default_rng(settings.seed).permutation(len(todo))]
    if limit is not None:
        todo = todo[: max(0, limit)]
    counts = {"enumerated": len(reactions), "already_done": len(done), "ok": 0, "skipped": 0}
    bar = tqdm(total=len(todo), disable=not progress, desc="reactions", unit="rxn")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max(1, workers), mp_context=context) as pool:
        futures = {}
        for rid, rxn in todo:
            seed = settings.seed + int(rid[4:12], 16) % 100000  # per reaction, independent of order
            futures[pool.submit(process_reaction, rxn, settings, seed)] = (rid, rxn)
        for fut in as_completed(futures):
            rid, rxn = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # a crash in one reaction must not lose the others
                result = {"status": "skipped", "reason": f"worker error: {exc}"}
            with h5py.File(output, "a") as h5:
                if rid not in h5["reactions"]:
                    _write(h5, rid, rxn, split_of(rxn.reactant_smiles, settings.seed), result, settings)
            counts[result["status"]] += 1
            bar.update(1)
            bar.set_postfix(ok=counts["ok"], skipped=counts["skipped"])
    bar.close()
    return counts
