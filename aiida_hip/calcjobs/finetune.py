"""``hip.finetune``: fine-tune a HIP checkpoint on a packed shard folder, on the compute node.

Inputs are the parent model (``HipModelData``) and the ``FolderData`` that
:func:`aiida_hip.workflows.learn.pack_reference_data` made from a batch's reference calculations, so the
output model's provenance reads: trained from these nodes, from that checkpoint. The worker checks the
parent's SHA-256 before it loads the file. A level of theory other than the parent's, an element the parent
does not know and an empty selection are refused before anything is submitted.
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import CalcJob

from ..common import exit_codes
from ..data import HipModelData
from ..worker.io import DATA_FOLDER, MODEL_FILE, RESULTS_FILE, finetune_input_text
from .base import INPUT_FILE, OUTPUT_FILE, worker_calcinfo

SETTING_KEYS = ("mode", "epochs", "max_minutes", "lr", "batch_size", "seed", "new_level", "lineage")


class HipFinetuneCalculation(CalcJob):
    """Head-only (fast) or end-to-end fine-tuning; outputs the new ``model`` and the before/after report."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("model", valid_type=HipModelData, help="The checkpoint to start from.")
        spec.input("data", valid_type=orm.FolderData, help="Shard folder (pack_reference_data's output).")
        spec.input(
            "settings",
            valid_type=orm.Dict,
            required=False,
            help=f"Fine-tune settings ({', '.join(SETTING_KEYS)}); new_level: accept labels of another level.",
        )
        spec.input("metadata.options.input_filename", valid_type=str, default=INPUT_FILE)
        spec.input("metadata.options.output_filename", valid_type=str, default=OUTPUT_FILE)
        spec.input("metadata.options.parser_name", valid_type=str, default="hip.finetune")
        spec.input("metadata.options.threads", valid_type=int, default=1)
        spec.inputs["metadata"]["options"]["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
        spec.inputs["metadata"]["options"]["withmpi"].default = False
        spec.inputs.validator = cls.validate_inputs
        spec.output("model", valid_type=HipModelData, required=False, help="The fine-tuned checkpoint.")
        spec.output("output_parameters", valid_type=orm.Dict, help="Held-out Hessian MAE before/after, level, time.")
        spec.default_output_node = "output_parameters"
        exit_codes.declare(
            spec,
            (
                exit_codes.OUTPUT_MISSING,
                exit_codes.OUTPUT_CORRUPT,
                exit_codes.OUTCOME_EXIT_CODES[exit_codes.Outcome.INVALID_INPUT],
                exit_codes.OUTCOME_EXIT_CODES[exit_codes.Outcome.ERROR],
            ),
        )

    @classmethod
    def validate_inputs(cls, value, _) -> str | None:
        """Refuse what cannot train: another level (unless ``new_level``), unknown elements, no geometry."""
        model, data = value.get("model"), value.get("data")
        if model is None or data is None:
            return None
        settings = value["settings"].get_dict() if value.get("settings") is not None else {}
        unknown = sorted(set(settings) - set(SETTING_KEYS))
        if unknown:
            return f"unknown fine-tune settings {unknown}; valid: {list(SETTING_KEYS)}"
        attributes = data.base.attributes
        level = attributes.get("level", None)
        if level is None:
            return "the data folder names no level of theory: make it with pack_reference_data"
        if level != model.level and not settings.get("new_level", False):
            return (
                f"the model was trained at {model.level}, the data is {level}: set new_level in the settings "
                "to fine-tune across levels of theory"
            )
        if not attributes.get("n_train", 0):
            return "the data folder holds no training geometry: the selection is empty"
        missing = sorted(set(attributes.get("elements", [])) - set(model.elements))
        if missing:
            return f"the data has element(s) {missing} that the checkpoint does not know ({model.elements})"
        return None

    def prepare_for_submission(self, folder):
        settings = self.inputs.settings.get_dict() if "settings" in self.inputs else {}
        model = self.inputs.model
        checkpoint = {"file": HipModelData.DEFAULT_FILENAME, "sha256": model.sha256}
        with folder.open(self.inputs.metadata.options.input_filename, "w") as handle:
            handle.write(finetune_input_text(checkpoint, settings, self.inputs.metadata.options.threads))
        local_copy_list = [
            (model.uuid, model.filename, HipModelData.DEFAULT_FILENAME),
            (self.inputs.data.uuid, "", DATA_FOLDER),  # "": the whole folder
        ]
        return worker_calcinfo(self.inputs, local_copy_list, [RESULTS_FILE, MODEL_FILE])
