"""L6: AiiDA WorkChains: ``hip.base`` (restartable TS optimisation), ``hip.geometry`` (restartable
minimisation + frequencies), ``hip.ts_search`` (one reaction),
``hip.reaction_batch`` (many reactions, throttled, with a summary)."""

from .base import HipGeometryWorkChain, HipTSOptBaseWorkChain
from .reaction_batch import ReactionBatchWorkChain
from .ts_search import TransitionStateWorkChain

__all__ = ["HipGeometryWorkChain", "HipTSOptBaseWorkChain", "ReactionBatchWorkChain", "TransitionStateWorkChain"]
