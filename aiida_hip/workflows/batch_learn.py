"""``hip.reaction_batch`` with ``learn``: after every k verified reactions, fine-tune the serving model on the
reference Hessians the batch has computed, and serve the reactions not yet started with it if it is no worse.

Each round packs the labels of every finished search (:func:`~.learn.pack_reference_data`, one
calcfunction, its inputs the label nodes), runs ``hip.finetune`` from the model serving now, and adopts the
new model only if its Hessian MAE on the batch's own held-out reactions (a hash of the reaction name picks
them, so they stay held out as the batch grows) is no worse than the parent's. A fine-tune that fails (a
killed worker leaves no results: exit code 301) runs again from the same inputs, up to three times in all;
then the batch goes on with the model it has. Labels of another level than the model's (``refine`` dft with an xTB
model) are what ``learn`` asks for, so they are accepted: the new model's ``level`` says which it learnt.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ToContext

from ..calcjobs.finetune import HipFinetuneCalculation
from ..common.level import label_level
from ..common.types import Calculator
from .learn import pack_inputs, pack_reference_data, search_entries

#: the ``learn`` settings and their defaults
LEARN_DEFAULTS = {"every": 8, "mode": "head", "epochs": 60, "max_minutes": 5.0}
#: a fine-tune that ends without a model is run this many times at most (a job killed, then its rerun cut off
#: by a daemon stop while it was being uploaded: both seen in tests/integration/test_learn_daemon.py)
MAX_FINETUNE_TRIES = 3
MODEL_NAMESPACES = (("opt",), ("path",), ("tsopt", "tsopt"), ("irc",))


def validate_learn(value: orm.Dict | None, _) -> str | None:
    if value is None:
        return None
    data = value.get_dict()
    unknown = sorted(set(data) - set(LEARN_DEFAULTS))
    if unknown:
        return f"unknown learn settings {unknown}; valid: {list(LEARN_DEFAULTS)}"
    if not isinstance(data.get("every", 1), int) or data.get("every", 1) < 1:
        return f"learn.every must be a positive integer, got {data.get('every')!r}"
    if data.get("mode", "head") not in ("head", "end_to_end"):
        return f"learn.mode must be head or end_to_end, got {data.get('mode')!r}"
    return None


def learn_input_error(inputs: dict) -> str | None:
    """``learn`` needs one search per reaction (the stage CalcJobs store the Hessians) and a served model."""
    if inputs.get("learn") is None:
        return None
    per_job, pack = inputs.get("reactions_per_job"), inputs.get("pack")
    if (per_job is not None and per_job.value > 1) or (pack is not None and pack.value):
        return "learn needs one hip.ts_search per reaction: use reactions_per_job 1 without pack"
    if inputs.get("ts_search", {}).get("tsopt", {}).get("tsopt", {}).get("model") is None:
        return "learn fine-tunes the model the searches use: give ts_search.tsopt.tsopt.model (a HipModelData)"
    return None


def with_model(inputs: AttributeDict, model: orm.Data) -> AttributeDict:
    """A copy of the ``hip.ts_search`` inputs in which every stage that has a model gets ``model``."""
    inputs = AttributeDict(inputs)
    for path in MODEL_NAMESPACES:
        parent = inputs
        for name in path[:-1]:
            if name not in parent:
                break
            parent[name] = AttributeDict(parent[name])
            parent = parent[name]
        else:
            key = path[-1]
            if key in parent and "model" in parent[key]:
                parent[key] = AttributeDict(parent[key]) | {"model": model}
    return inputs


class LearnMixin:
    """Steps of ``hip.reaction_batch`` for ``learn`` (its ``setup`` calls :meth:`_setup_learn`)."""

    def _setup_learn(self) -> None:
        self.ctx.learn = LEARN_DEFAULTS | self.inputs.learn.get_dict() if "learn" in self.inputs else None
        self.ctx.model = self.inputs.ts_search.tsopt.tsopt.model.uuid if self.ctx.learn else None
        self.ctx.learned_at = 0  # verified reactions at the last fine-tune
        self.ctx.rounds = []  # one entry per fine-tune round
        self.ctx.finetune_tries = 0
        self.ctx.retry_round = False

    def _search_inputs(self, base):
        """The searches' inputs with the model serving now."""
        return with_model(base, orm.load_node(self.ctx.model)) if self.ctx.learn else base

    def _verified(self) -> int:
        return sum(
            1
            for node in self.ctx.searches
            if node.is_finished_ok and node.outputs.output_parameters.get("status") == "success"
        )

    def should_learn(self):
        """A round is due (k more verified reactions, and reactions left to serve) or owed (its fine-tune
        failed once)."""
        learn = self.ctx.learn
        if not learn:
            return False
        due = bool(self.ctx.pending) and self._verified() - self.ctx.learned_at >= learn["every"]
        return self.ctx.retry_round or due

    def _level(self) -> str:
        refine = self.inputs.ts_search.refine.value if "refine" in self.inputs.ts_search else "none"
        return label_level(refine if refine in (Calculator.XTB.value, Calculator.DFT.value) else Calculator.XTB.value)

    def _pack(self, index: int):
        """The round's packed labels (a calcfunction already run under this label is reused)."""
        label = f"pack_labels_{index}"
        done = self.node.base.links.get_outgoing(link_label_filter=label).first()
        if done is not None and "result" in done.node.outputs:
            return done.node.outputs.result
        entries = search_entries([n for n in self.ctx.searches if n.is_terminated], self._level())
        if not entries:
            return None
        return pack_reference_data(**pack_inputs(entries), metadata={"call_link_label": label})

    def run_finetune(self):
        index = len(self.ctx.rounds)
        self.ctx.retry_round = False
        self.ctx.learned_at = self._verified()
        data = self._pack(index)
        if data is None or not data.base.attributes.get("n_train", 0):
            self.report(f"learn round {index}: no training label yet; the model stays")
            self.ctx.rounds.append({"round": index, "adopted": False, "reason": "no training label"})
            return None
        model = orm.load_node(self.ctx.model)
        path = self.inputs.ts_search.path
        options = {k: v for k, v in path.get("metadata", {}).get("options", {}).items() if k != "parser_name"}
        learn = self.ctx.learn
        settings = {
            "mode": learn["mode"],
            "epochs": learn["epochs"],
            "max_minutes": learn["max_minutes"],
            "new_level": data.base.attributes.get("level") != model.level,
            "lineage": {"batch": self.node.uuid, "data": data.uuid, "round": index},
        }
        inputs = {
            "code": path.code,
            "model": model,
            "data": data,
            "settings": orm.Dict(settings),
            "metadata": {
                "label": f"finetune {index}",
                "call_link_label": f"finetune_{index}_{self.ctx.finetune_tries}",
                "options": options,
            },
        }
        node = self.submit(HipFinetuneCalculation, **inputs)
        self.report(f"learn round {index}: {data.base.attributes.get('n_train')} training geometries -> <{node.pk}>")
        self.ctx.rounds.append({"round": index, "data": data.uuid, "finetune": node.uuid})
        return ToContext(finetune=node)

    def inspect_finetune(self):
        if "finetune" not in self.ctx:
            return None
        calc, entry = self.ctx.finetune, self.ctx.rounds[-1]
        del self.ctx.finetune
        if not calc.is_finished_ok or "model" not in calc.outputs:
            self.ctx.finetune_tries += 1
            if self.ctx.finetune_tries < MAX_FINETUNE_TRIES:
                self.report(f"fine-tune <{calc.pk}> ended without a model ({calc.exit_status}); running it again")
                self.ctx.rounds.pop()  # the same round again: its packed labels are reused
                self.ctx.retry_round = True
                return None
            entry |= {"adopted": False, "reason": f"fine-tune failed: {calc.exit_message or calc.exit_status}"}
            self.ctx.finetune_tries = 0
            return None
        self.ctx.finetune_tries = 0
        report = calc.outputs.output_parameters.get_dict()
        held = report.get("held_out") or {}
        entry |= {
            "model": calc.outputs.model.uuid,
            "adopted": bool(report.get("no_worse")),
            "held_out_before": held.get("hessian_mae_before"),
            "held_out_after": held.get("hessian_mae_after"),
            "n_train_geometries": report.get("n_geometries"),
        }
        if entry["adopted"]:
            self.ctx.model = calc.outputs.model.uuid
        self.report(
            f"learn round {entry['round']}: held-out Hessian MAE {held.get('hessian_mae_before')} -> "
            f"{held.get('hessian_mae_after')}: {'adopted' if entry['adopted'] else 'kept the serving model'}"
        )
        return None
