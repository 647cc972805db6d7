"""Submitting children so that a step interrupted half-way (a daemon worker killed) is safe to rerun.

AiiDA checkpoints a work chain between steps. A step that submits children and is interrupted before
its checkpoint runs again from the start in another worker, and would submit the same children again
(the first ones keep running: they are in the broker's queue). ``submit`` here looks for a child this
work chain already called under the same link label and returns it instead: each stage, and each
reaction of a batch, runs once.

One child cannot be reused: a worker killed inside ``submit`` itself, after the child's node was stored
(with its call link) but before the child entered its first state and saved its checkpoint. That node
has no process state and no checkpoint, so no worker can ever run it and ``verdi process repair`` does
not see it as active; waiting on it would hang the work chain forever. It never ran and has no outputs,
so it is deleted (that node and its links only: ``aiida.tools.delete_nodes`` would also delete its
callers, this work chain included) and the child submitted again under the same label.
"""

from __future__ import annotations

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import WorkChain
from plumpy import ProcessState

CALL_LINKS = (LinkType.CALL_CALC, LinkType.CALL_WORK)


def never_started(node: orm.ProcessNode) -> bool:
    """A child whose submission was cut off before its first checkpoint: it can never be continued."""
    return node.process_state is None or (node.process_state is ProcessState.CREATED and node.checkpoint is None)


class SubmitOnceMixin:
    """For ``WorkChain`` subclasses whose steps give every child a unique ``call_link_label``.

    ``submit`` itself is made idempotent, so steps inherited from aiida-core (``BaseRestartWorkChain``'s
    ``run_process``, which labels its children ``iteration_NN``) are covered too.
    """

    def submit(self: WorkChain, process, inputs: dict | None = None, **kwargs):
        label = ({**(inputs or {}), **kwargs}.get("metadata") or {}).get("call_link_label")
        if label:
            for link in self.node.base.links.get_outgoing(link_label_filter=label).all():
                if link.link_type not in CALL_LINKS:
                    continue
                child = link.node
                if never_started(child):
                    self.report(
                        f"{label}: {child.process_label}<{child.pk}> was stored by an interrupted submission and "
                        "never started; deleting it and submitting again"
                    )
                    backend = child.backend
                    with backend.transaction():
                        backend.delete_nodes_and_connections([child.pk])
                    continue
                self.report(f"{label}: {child.process_label}<{child.pk}> was already submitted; reusing it")
                return child
        return super().submit(process, inputs, **kwargs)
