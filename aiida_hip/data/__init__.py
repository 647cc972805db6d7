"""AiiDA data types of aiida-hip (entry points ``hip.*`` in ``aiida.data``)."""

from .model import HipModelData

__all__ = ["HipModelData"]
