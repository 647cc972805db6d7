"""The report's figures as PNG bytes (matplotlib, Agg backend; no AiiDA)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

#: colours of the page's figures (the screenshot test looks for FUNNEL_COLOUR)
FUNNEL_COLOUR = "#1f77b4"
FORWARD_COLOUR = "#d62728"
REVERSE_COLOUR = "#2ca02c"


def _figure(width: float = 6.4, height: float = 3.6):
    """A figure and its axes, without pyplot: no backend and no global figure list (``savefig`` uses Agg)."""
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.subplots()


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def funnel_png(stages: Sequence[tuple[str, int]]) -> bytes:
    """Horizontal bars: how many reactions got through each stage, the count written on each bar."""
    fig, ax = _figure(6.4, 0.55 * len(stages) + 1.2)
    labels = [label for label, _ in stages][::-1]
    counts = [n for _, n in stages][::-1]
    bars = ax.barh(labels, counts, color=FUNNEL_COLOUR)
    total = max(stages[0][1], 1)
    for bar, n in zip(bars, counts, strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {n} ({100 * n / total:.0f}%)", va="center")
    ax.set_xlim(0, total * 1.25)
    ax.set_xlabel("reactions")
    ax.set_title("TS-search funnel")
    return _png(fig)


def _no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what}", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def barrier_histogram_png(forward: Sequence[float], reverse: Sequence[float]) -> bytes:
    fig, ax = _figure()
    values = [v for v in (*forward, *reverse) if v is not None]
    if values:
        bins = np.histogram_bin_edges(values, bins=min(20, max(5, len(values))))
        ax.hist(
            [list(forward), list(reverse)],
            bins=bins,
            color=[FORWARD_COLOUR, REVERSE_COLOUR],
            label=[f"forward (n={len(forward)})", f"reverse (n={len(reverse)})"],
        )
        ax.set_xlabel("electronic barrier (eV)")
        ax.set_ylabel("TSs")
        ax.legend()
    else:
        _no_data(ax, "barriers")
    ax.set_title("Barriers of the TSs found")
    return _png(fig)


def imaginary_histogram_png(frequencies: Sequence[float]) -> bytes:
    fig, ax = _figure()
    if len(frequencies):
        ax.hist(frequencies, bins=min(20, max(5, len(frequencies))), color=FUNNEL_COLOUR)
        ax.set_xlabel("imaginary frequency (cm$^{-1}$, shown negative)")
        ax.set_ylabel("TSs")
    else:
        _no_data(ax, "imaginary frequencies")
    ax.set_title("Imaginary frequency of the TSs found")
    return _png(fig)


def profiles_png(profiles: Sequence[tuple[str, dict]], legend_max: int = 12) -> bytes:
    """Every IRC energy profile in one plot (relative to each reaction's reactant)."""
    fig, ax = _figure(7.2, 4.2)
    for name, profile in profiles:
        ax.plot(profile["s_angstrom"], profile["energy_ev"], lw=1.2, label=name)
    if profiles:
        ax.axvline(0.0, color="0.6", lw=0.8, ls="--")
        ax.set_xlabel("path length from the TS (Angstrom; reactant side < 0)")
        ax.set_ylabel("E - E(reactant) (eV)")
        if len(profiles) <= legend_max:
            ax.legend(fontsize=7)
    else:
        _no_data(ax, "IRC energy profiles")
    ax.set_title("Energy along each IRC")
    return _png(fig)


def profile_thumbnail_png(profile: dict) -> bytes:
    fig, ax = _figure(2.0, 1.1)
    ax.plot(profile["s_angstrom"], profile["energy_ev"], color=FORWARD_COLOUR, lw=1.2)
    ax.axvline(0.0, color="0.6", lw=0.6, ls="--")
    ax.tick_params(labelsize=6)
    ax.set_ylabel("eV", fontsize=6)
    return _png(fig)
