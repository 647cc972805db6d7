"""``HipModelData``: a HIP checkpoint as a provenance node, with its SHA-256 and architecture.

Every Hessian an aiida-hip CalcJob computes links back to the exact weights that made it: the node
stores the file, its SHA-256 and the model's configuration; the worker checks the hash again on the
compute node before loading the file.
"""

from __future__ import annotations

from pathlib import Path

from aiida import orm

from ..common.level import DEFAULT_LABEL_LEVEL


class HipModelData(orm.SinglefileData):
    """A HIP checkpoint file; ``sha256`` and ``architecture`` are attributes you can query."""

    DEFAULT_FILENAME = "model.pt"

    def __init__(self, file: str | Path, sha256: str | None = None, source: str | None = None, **kwargs):
        """``sha256``, when given, must match the file: a mismatch raises before anything is stored."""
        # torch (aiida_hip.hip): only when a node is made, never when the daemon loads this class
        from ..hip.checkpoints import CheckpointError, read_checkpoint
        from ..hip.checkpoints import sha256 as file_sha256

        path = Path(file)
        if not path.is_file():
            raise ValueError(f"checkpoint file not found: {path}")
        digest = file_sha256(path)
        if sha256 is not None and sha256 != digest:
            raise ValueError(
                f"checkpoint {path.name} has SHA-256 {digest}, not the expected {sha256}: refusing a model "
                "whose weights are not the ones named"
            )
        try:
            payload = read_checkpoint(path)
        except CheckpointError as exc:
            raise ValueError(str(exc)) from exc
        super().__init__(file=str(path), filename=self.DEFAULT_FILENAME, **kwargs)
        self.base.attributes.set("sha256", digest)
        self.base.attributes.set("architecture", payload["config"])
        self.base.attributes.set("format", payload.get("format"))
        self.base.attributes.set("source", source or path.name)
        metadata = payload.get("metadata") or {}
        self.base.attributes.set("training", {k: metadata[k] for k in sorted(metadata) if k != "history"})
        # the level of theory it learnt (the campaign's and shipped models name none: GFN2-xTB)
        self.base.attributes.set("level", metadata.get("level") or DEFAULT_LABEL_LEVEL)
        parent = (metadata.get("finetune") or {}).get("parent_sha256")
        if parent:
            self.base.attributes.set("parent_sha256", parent)

    @property
    def sha256(self) -> str:
        return self.base.attributes.get("sha256")

    @property
    def architecture(self) -> dict:
        return self.base.attributes.get("architecture")

    @property
    def level(self) -> str:
        return self.base.attributes.get("level", DEFAULT_LABEL_LEVEL)

    @property
    def elements(self) -> list[int]:
        return list(self.architecture.get("elements", []))

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, store: bool = True) -> HipModelData:
        """The node for a checkpoint (default: the shipped one), reusing a stored node with the same hash."""
        from ..hip.checkpoints import DEFAULT_CHECKPOINT
        from ..hip.checkpoints import sha256 as file_sha256

        path = Path(path) if path is not None else DEFAULT_CHECKPOINT
        digest = file_sha256(path)
        existing = orm.QueryBuilder().append(cls, filters={"attributes.sha256": digest}).first(flat=True)
        if existing is not None:
            return existing
        node = cls(path, sha256=digest, source="shipped" if path == DEFAULT_CHECKPOINT else path.name)
        return node.store() if store else node
