"""Submitting children so that a step interrupted half-way (a daemon worker killed) is safe to rerun.

AiiDA checkpoints a work chain between steps. A step that submits children and is interrupted before
its checkpoint runs again from the start in another worker, and would submit the same children again
(the first ones keep running: they are in the broker's queue). ``submit_once`` looks for a child this
work chain already called under the same link label and returns it instead: each stage, and each
reaction of a batch, runs once.
"""

from __future__ import annotations

from aiida.common.links import LinkType
from aiida.engine import WorkChain

CALL_LINKS = (LinkType.CALL_CALC, LinkType.CALL_WORK)


class SubmitOnceMixin:
    """For ``WorkChain`` subclasses whose steps give every child a unique ``call_link_label``."""

    def submit_once(self: WorkChain, process, **inputs):
        label = (inputs.get("metadata") or {}).get("call_link_label")
        if label:
            for link in self.node.base.links.get_outgoing(link_label_filter=label).all():
                if link.link_type in CALL_LINKS:
                    self.report(f"{label}: {link.node.process_label}<{link.node.pk}> was already submitted; reusing it")
                    return link.node
        return self.submit(process, **inputs)
