"""The two-level search inside ``hip.ts_search``: HIP explores, the reference level confirms.

With ``refine`` = ``xtb`` or ``dft`` and a HIP level, the ends are minimised, the TS optimised with the
level's HIP Hessians (conditioned and guarded by the worker), judged with one reference Hessian and its
IRC followed, all on the reference surface. Where the TS guess comes from (``guess``):

- ``reference`` (default, the measured better one): the path from single points at the reference level,
  then one ``hip.base`` on the reference surface;
- ``hip``: the path and a loose TS pre-optimisation on the HIP surface (``tsopt``, no frequencies), then a
  second ``hip.base`` refines that TS on the reference surface (``tsopt_refine``); both TS structures stay
  in provenance (outputs ``ts_hip`` and ``ts``).
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext

from ..common.level import Level
from ..common.types import REFINE_LEVELS, Calculator, HessianMode
from .base import HipTSOptBaseWorkChain

#: the HIP pre-optimisation: loose, short, no frequency check (the HIP surface only explores)
PRE_OPT_SETTINGS = {"freq": False, "tsopt": {"convergence": "loose", "max_cycles": 60}, "sella": {"max_steps": 60}}


def refine_choices() -> list[str]:
    return ["none", *REFINE_LEVELS]


GUESSES = ("reference", "hip")


def validate_guess(value: orm.Str, _) -> str | None:
    if value is not None and value.value not in GUESSES:
        return f"guess must be one of {list(GUESSES)}, got {value.value!r}"
    return None


def validate_refine(value: orm.Str, _) -> str | None:
    if value is not None and value.value not in refine_choices():
        return f"refine must be one of {refine_choices()}, got {value.value!r}"
    return None


class TwoLevelMixin:
    """Steps and level bookkeeping of the two-level search, for ``TransitionStateWorkChain``."""

    def _setup_levels(self, explore: Level | None) -> None:
        """``ctx.refine``: the reference calculator when this search is two-level, else ``None``."""
        refine = self.inputs.refine.value
        two_level = explore is not None and explore.calculator == Calculator.HIP and refine != "none"
        self.ctx.refine = refine if two_level else None
        self.ctx.hip_guess = two_level and self.inputs.guess.value == "hip"

    def _parameters(self, role: str, given: orm.Dict | None) -> orm.Dict | None:
        """The level parameters of a stage in a two-level search (the given ones otherwise): the reference
        surface with the level's Hessians (``refine``: ends and TS), the reference surface without Hessians
        (``irc``, from the judging one; ``path``, single points; ``ends``, minimised as the Hessian-free search
        minimises them), or the HIP level (``hip``)."""
        if not self.ctx.refine or given is None or role == "hip":
            return given
        level = dict(given.get_dict())
        level["calculator"] = self.ctx.refine
        if role in ("irc", "path", "ends"):
            level["hessian"] = HessianMode.NONE.value
        return orm.Dict(level)

    def _level_inputs(self, inputs: AttributeDict, role: str) -> AttributeDict:
        """``inputs`` with the stage's level; a stage whose level needs no model gets none."""
        inputs.parameters = self._parameters(role, inputs.get("parameters"))
        if self.ctx.refine and role in ("irc", "path", "ends"):
            inputs.pop("model", None)
        return inputs

    def should_refine(self):
        return self.ctx.hip_guess and self.ctx.alive

    def run_refine(self):
        """Refine the HIP TS (converged or not: it only explores) on the reference surface."""
        inputs = AttributeDict(self.exposed_inputs(HipTSOptBaseWorkChain, namespace="tsopt"))
        inputs.tsopt.ts_guess = self.ctx.stage_nodes["tsopt_hip"].outputs.ts
        inputs.tsopt.pop("tangent", None)
        if "tangent" in self.ctx.path_calc.outputs:
            inputs.tsopt.tangent = self.ctx.path_calc.outputs.tangent
        settings = inputs.tsopt.settings.get_dict() if "settings" in inputs.tsopt else {}
        inputs.tsopt.settings = orm.Dict(settings | {"route": self.ctx.route, "freq_hessian": "exact"})
        inputs.tsopt.parameters = self._parameters("refine", inputs.tsopt.get("parameters"))
        inputs.metadata = self._label("tsopt_refine")
        node = self.submit(HipTSOptBaseWorkChain, **inputs)
        self.report(f"TS refinement at {self.ctx.refine} ({self.ctx.route}) <{node.pk}>")
        return ToContext(tsopt_wc=node)

    def _keep_hip_ts(self, last) -> bool:
        """With the HIP guess, the HIP stage's last TS geometry goes on to the refinement."""
        if not self.ctx.hip_guess:
            return False
        if last is None or "ts" not in last.outputs:
            return False
        self.ctx.stage_nodes["tsopt_hip"] = last
        return True
