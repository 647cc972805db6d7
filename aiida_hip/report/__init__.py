"""L7: a static HTML report of a batch of TS searches (``aiida-hip report``).

``collect`` reads everything from provenance into plain data (AiiDA), ``plots`` draws it (matplotlib,
no AiiDA) and ``render`` writes one self-contained page (PNG figures and TS geometries embedded as
data URIs), so the page can be mailed or archived without a server.
"""

from __future__ import annotations

from .collect import ReportData, collect_report
from .render import render_report, write_report

__all__ = ["ReportData", "collect_report", "render_report", "write_report"]
