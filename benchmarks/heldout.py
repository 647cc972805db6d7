"""The held-out reactions the science benchmarks run on, built from our own enumeration, never trained on.

Every reaction whose reactant molecule falls in the test split of ``aiida-hip data generate`` (same
seed, same split function) has its reactant and product relaxed at GFN2-xTB (the generator's own
``endpoints``: ETKDG embedding, xTB BFGS to 0.02 eV/A, connectivity kept) and cached in
``data/heldout_endpoints.extxyz`` (resumable). Minima = the distinct molecules among those ends.

    python benchmarks/heldout.py [--workers 2] [--limit N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "data" / "heldout_endpoints.extxyz"


def test_reactions() -> list:
    from aiida_hip.dataset.generate import GenerationSettings, enumerate_all, reaction_id, split_of

    settings = GenerationSettings()
    reactions = [r for r in enumerate_all(settings) if split_of(r.reactant_smiles, settings.seed) == "test"]
    return sorted(reactions, key=lambda r: reaction_id(r.key))


def _relax(reaction) -> tuple[str, dict]:
    os.environ["OMP_NUM_THREADS"] = "1"
    from aiida_hip.dataset.generate import GenerationSettings, reaction_id
    from aiida_hip.dataset.paths import SkipReaction, endpoints

    rid = reaction_id(reaction.key)
    seed = GenerationSettings().seed + int(rid[4:12], 16) % 100000  # as the generator seeds this reaction
    try:
        r, p, e_r, e_p = endpoints(reaction, seed)
    except SkipReaction as exc:
        return rid, {"skipped": str(exc)}
    except Exception as exc:  # one bad reaction never stops the set
        return rid, {"skipped": f"{type(exc).__name__}: {exc}"}
    return rid, {"reactant": r, "product": p, "e_reactant": e_r, "e_product": e_p}


def _frames(path: Path) -> list:
    from ase.io import read

    return read(path, index=":", format="extxyz") if path.is_file() else []


def build(cache: Path = CACHE, workers: int = 2, limit: int | None = None) -> Path:
    """Relax the ends of every held-out reaction not yet in ``cache`` (a skipped one is recorded too)."""
    from ase import Atoms
    from ase.io import write
    from tqdm import tqdm

    from aiida_hip.dataset.generate import reaction_id

    done = {f.info["reaction_id"] for f in _frames(cache)}
    todo = [r for r in test_reactions() if reaction_id(r.key) not in done][:limit]
    cache.parent.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")  # tblite + fork can hang
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {pool.submit(_relax, r): r for r in todo}
        for future in tqdm(as_completed(futures), total=len(futures), desc="held-out ends", unit="rxn"):
            reaction = futures[future]
            rid, out = future.result()
            info = {"reaction_id": rid, "reaction": reaction.key, "move": reaction.move}
            if "skipped" in out:
                frames = [Atoms(numbers=reaction.numbers, info=info | {"role": "skipped", "reason": out["skipped"]})]
            else:
                frames = [
                    Atoms(
                        numbers=reaction.numbers,
                        positions=out[role],
                        info=info | {"role": role, "energy_ev": out[f"e_{role}"]},
                    )
                    for role in ("reactant", "product")
                ]
            write(cache, frames, format="extxyz", append=True)
    return cache


def reactions(cache: Path = CACHE) -> list[dict]:
    """``{name, numbers, reactant, product, e_reactant, e_product}`` of every held-out reaction with both ends."""
    by_id: dict[str, dict] = {}
    for frame in _frames(cache):
        role = frame.info["role"]
        if role == "skipped":
            continue
        entry = by_id.setdefault(frame.info["reaction_id"], {"name": frame.info["reaction"], "numbers": frame.numbers})
        entry[role] = frame.positions.copy()
        entry[f"e_{role}"] = float(frame.info["energy_ev"])
    return [by_id[k] for k in sorted(by_id) if "reactant" in by_id[k] and "product" in by_id[k]]


def minima(cache: Path = CACHE) -> list[dict]:
    """Distinct relaxed molecules (by SMILES) among the held-out ends: ``{name, numbers, positions}``."""
    seen, out = set(), []
    for reaction in reactions(cache):
        smiles = reaction["name"].split(">>")
        for role, name in (("reactant", smiles[0]), ("product", smiles[1])):
            if name not in seen:
                seen.add(name)
                out.append({"name": name, "numbers": reaction["numbers"], "positions": reaction[role]})
    return out


def distorted(items: list[dict], per_molecule: int, rms: float, seed: int = 20261126) -> list[dict]:
    """Seeded Gaussian rattles of ``rms`` Angstrom (RMS over atoms) of each minimum."""
    rng = np.random.default_rng(seed)
    out = []
    for item in items:
        for k in range(per_molecule):
            step = rng.normal(size=item["positions"].shape)
            step *= rms / np.sqrt((step**2).sum(axis=1).mean())
            out.append(item | {"name": f"{item['name']}#{k}", "positions": item["positions"] + step})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    build(workers=args.workers, limit=args.limit)
    print(f"{len(reactions())} held-out reactions with both ends, {len(minima())} distinct minima in {CACHE}")


if __name__ == "__main__":
    main()
