"""Reference transition states for the pipeline tests, found independently of pysisyphus.

Usage: python scripts/reference_ts.py FOLDER   (FOLDER holds reactant.xyz and product.xyz)

GFN2-xTB throughout: the endpoints are relaxed (BFGS, written back), a geodesic interpolation gives
the highest-energy image, and Sella (exact finite-difference xTB Hessians, internal coordinates)
converges the saddle to 1e-3 eV/A. Writes ts_reference.xyz; needs ``pip install sella``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from ase.io import read, write
from ase.optimize import BFGS
from tblite.ase import TBLite

from aiida_hip.chem.reference import XTBReference
from aiida_hip.chem.vibrations import analyse
from aiida_hip.pipeline.path import geodesic_images


def xtb(atoms):
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0, max_iterations=300)
    return atoms


def main(folder: Path) -> None:
    from sella import Sella

    reactant, product = xtb(read(folder / "reactant.xyz")), xtb(read(folder / "product.xyz"))
    for atoms in (reactant, product):
        BFGS(atoms, logfile=None).run(fmax=0.005, steps=500)
    write(folder / "reactant.xyz", reactant)
    write(folder / "product.xyz", product)
    images = [xtb(im) for im in geodesic_images(reactant, product, 15)]
    energies = [im.get_potential_energy() for im in images]
    ts = images[int(np.argmax(energies[1:-1])) + 1]
    reference = XTBReference(workers=1)

    def hessian(atoms):
        return reference.predict(atoms.numbers, atoms.positions)["hessian"]

    opt = Sella(ts, order=1, internal=True, hessian_function=hessian, diag_every_n=1, logfile=None)
    if not opt.run(fmax=1e-3, steps=300):
        raise SystemExit(f"{folder.name}: Sella did not converge")
    vib = analyse(ts.numbers, ts.positions, hessian(ts))
    ts.info["comment"] = "GFN2-xTB reference TS: geodesic HEI + Sella, fmax 1e-3 eV/A (scripts/reference_ts.py)"
    write(folder / "ts_reference.xyz", ts)
    barrier = ts.get_potential_energy() - reactant.get_potential_energy()
    print(f"{folder.name}: barrier {barrier:.3f} eV, {vib.n_imaginary} imaginary ({vib.frequencies[0]:.0f} cm^-1)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
