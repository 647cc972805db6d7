"""Model hyper-parameters: one dataclass, stored in every checkpoint so a model rebuilds exactly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

#: Fields added after checkpoints and campaign states were saved, with the value that leaves the model as before.
ADDED_LATER = {"hessian_sum_rule": False}


@dataclass(frozen=True)
class HIPConfig:
    """Architecture of a :class:`~aiida_hip.hip.model.HIPModel`.

    The default is small (about 0.4 M parameters) so that it trains on a CPU workstation; a larger
    model is a one-line change, e.g. ``HIPConfig(channels=64, num_layers=4)``.
    """

    #: Atomic numbers the element embedding knows; anything else is rejected at input.
    elements: tuple[int, ...] = (1, 6, 7, 8)
    #: Multiplicity of every irrep (0e, 1o, 2e) of the node features.
    channels: int = 48
    #: Highest angular momentum of node features and edge spherical harmonics (>= 2 for Hessians).
    lmax: int = 2
    #: Message-passing layers of the backbone (energy and forces).
    num_layers: int = 3
    #: Message-passing cutoff in Angstrom.
    cutoff: float = 5.0
    num_bessel: int = 8
    poly_p: int = 6
    radial_hidden: int = 64
    #: Normalisation of the neighbour sum (set from the training data).
    avg_num_neighbors: float = 8.0
    #: Extra message-passing layers owned by the Hessian head (the seed adds one before the readout).
    hessian_layers: int = 1
    #: Channels of the few-channel projection used for pair products (keeps the head cheap).
    hessian_channels: int = 16
    #: Cutoff of the Hessian graph in Angstrom; ``None`` means every pair of atoms in a molecule.
    hessian_cutoff: float | None = None
    #: Range (Angstrom) of the Gaussian distance basis for Hessian pairs.
    hessian_basis_range: float = 10.0
    hessian_num_basis: int = 16
    #: Build the Hessian exactly symmetric and translation-invariant: each diagonal block is minus the sum
    #: of its row's off-diagonal blocks (acoustic sum rule), after the antisymmetric parts of the
    #: off-diagonal blocks are made divergence-free so that this sum is symmetric. No diagonal readout.
    #: Needs every pair (``hessian_cutoff=None``). ``False``: the diagonal block is read out (shipped model).
    hessian_sum_rule: bool = False
    #: Two atoms closer than this (Angstrom) are rejected as unphysical input.
    min_distance: float = 0.1

    def __post_init__(self) -> None:
        if self.lmax < 2:
            raise ValueError("HIP needs node irreps up to l = 2 to build 3x3 Hessian blocks (lmax >= 2)")
        if not self.elements or len(set(self.elements)) != len(self.elements):
            raise ValueError(f"elements must be a non-empty list of distinct atomic numbers: {self.elements}")
        if self.cutoff <= 0 or (self.hessian_cutoff is not None and self.hessian_cutoff <= 0):
            raise ValueError("cutoffs must be positive")
        if self.hessian_sum_rule and self.hessian_cutoff is not None:
            raise ValueError("hessian_sum_rule needs every pair of atoms (hessian_cutoff=None)")
        object.__setattr__(self, "elements", tuple(int(z) for z in self.elements))

    def to_dict(self) -> dict:
        return asdict(self)

    def hash_dict(self) -> dict:
        """``to_dict`` without fields added later at the value that builds the model as before them.

        Campaign config hashes use it, so a state saved before a field existed still resumes.
        """
        return {k: v for k, v in self.to_dict().items() if not (k in ADDED_LATER and v == ADDED_LATER[k])}

    @classmethod
    def from_dict(cls, data: dict) -> HIPConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown HIPConfig fields: {sorted(unknown)}")
        return cls(**{k: (tuple(v) if k == "elements" else v) for k, v in data.items()})
