"""The level of theory of one run: what makes energies and forces, what makes Hessians, and the rules
that decide whether a combination can run at all (checked wherever an input is taken, not after a
queue wait)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .types import Calculator, HessianMode, choices


class LevelError(ValueError):
    """An impossible combination of calculator, Hessian, charge and multiplicity."""


@dataclass(frozen=True)
class Level:
    """Energy/forces source and Hessian source for one pipeline run."""

    calculator: str = Calculator.HIP.value
    hessian: str = HessianMode.PREDICTED.value
    checkpoint: str | None = None
    charge: int = 0
    multiplicity: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.calculator not in choices(Calculator):
            raise LevelError(f"calculator must be one of {choices(Calculator)}, got {self.calculator!r}")
        if self.hessian not in choices(HessianMode):
            raise LevelError(f"hessian must be one of {choices(HessianMode)}, got {self.hessian!r}")
        if not isinstance(self.charge, int) or isinstance(self.charge, bool):
            raise LevelError(f"charge must be an integer, got {self.charge!r}")
        if self.multiplicity is not None and (not isinstance(self.multiplicity, int) or self.multiplicity < 1):
            raise LevelError(f"multiplicity must be a positive integer or None, got {self.multiplicity!r}")
        if self.device not in ("cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise LevelError(f"device must be cpu or cuda, got {self.device!r}")
        if self.uses_model and (self.charge != 0 or self.multiplicity not in (None, 1)):
            raise LevelError(
                "the HIP model is trained on neutral closed-shell molecules only "
                f"(charge {self.charge}, multiplicity {self.multiplicity}): use calculator xtb and hessian reference"
            )

    @classmethod
    def from_dict(cls, data: dict | None) -> Level:
        """A level from a plain mapping (AiiDA ``Dict``, worker JSON); unknown keys are a ``LevelError``."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise LevelError(f"unknown level key(s) {unknown}; valid: {list(KEYS)}")
        return cls(**data)

    @property
    def uses_model(self) -> bool:
        """The HIP checkpoint is needed: HIP energies or a model Hessian."""
        return self.calculator == Calculator.HIP or HessianMode(self.hessian).uses_model

    @property
    def uses_reference(self) -> bool:
        """A reference code is needed: its energies, or reference Hessians."""
        return Calculator(self.calculator).is_reference or self.hessian == HessianMode.REFERENCE

    @property
    def reference_calculator(self) -> str:
        """The reference code that makes this level's reference Hessians (xTB unless the surface is DFT)."""
        return self.calculator if Calculator(self.calculator).is_reference else Calculator.XTB.value

    @property
    def exact_hessian(self) -> str:
        """The Hessian that is the true second derivative of this level's energy surface."""
        if Calculator(self.calculator).is_reference:
            return HessianMode.REFERENCE.value
        return HessianMode.AUTOGRAD.value

    def refined(self, calculator: str) -> Level:
        """The two-level search's refinement level: ``calculator``'s surface with this level's Hessians (HIP
        Hessians where this level predicts them; none where this level has none)."""
        return Level(calculator, self.hessian, self.checkpoint, self.charge, self.multiplicity, self.device)

    @property
    def hessian_is_exact(self) -> bool:
        """The level's Hessian is the true second derivative of its energy surface (or there is none)."""
        return self.hessian in (self.exact_hessian, HessianMode.NONE)

    def judging_hessian(self, choice: str | None) -> str | None:
        """The Hessian mode that judges a stationary point: the level's own (``None`` or ``level``), the
        exact second derivative of the surface (``exact``) or a mode named outright."""
        if choice in (None, "level"):
            return None
        if choice == "exact":
            return self.exact_hessian
        if choice not in choices(HessianMode):
            raise LevelError(f"freq_hessian must be level, exact or one of {choices(HessianMode)}, got {choice!r}")
        return choice

    def to_dict(self) -> dict:
        return asdict(self)


#: every key a level mapping may carry
KEYS: tuple[str, ...] = tuple(f.name for f in fields(Level))
#: the keys a user sets in AiiDA parameters and worker input (the checkpoint travels as a model node)
PARAMETER_KEYS: tuple[str, ...] = tuple(k for k in KEYS if k != "checkpoint")
PARAMETERS_HELP = (
    f"Level of theory: calculator ({'|'.join(choices(Calculator))}), hessian ({'|'.join(choices(HessianMode))}), "
    "charge, multiplicity, device (cpu|cuda). Default: HIP energies, forces and predicted Hessians."
)

#: the level of theory of labels and checkpoints that name none (the campaign's data, the shipped model)
DEFAULT_LABEL_LEVEL = "GFN2-xTB"
#: the name each reference calculator's labels carry (DFT: the functional and basis of the DFT check)
LABEL_LEVELS = {Calculator.XTB.value: DEFAULT_LABEL_LEVEL, Calculator.DFT.value: "B3LYP/6-31G* (PySCF)"}


def label_level(calculator: str) -> str:
    """The level name on the labels a reference ``calculator`` makes (eV, A throughout)."""
    if calculator not in LABEL_LEVELS:
        raise LevelError(f"{calculator!r} makes no reference labels; one of {sorted(LABEL_LEVELS)}")
    return LABEL_LEVELS[calculator]
