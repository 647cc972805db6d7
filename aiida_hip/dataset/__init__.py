"""Our own reaction dataset: enumerate reactions, trace xTB paths, sample and label geometries (HDF5).

Built from a SMILES list we wrote (``molecules.smi``); never from pysisyphus's ``geom_library``,
which is reserved for independent evaluation.
"""
