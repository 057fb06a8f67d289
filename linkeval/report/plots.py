"""Figures for the steering group: one consistent, colour-blind-safe look.

Every function takes a table that has already been through :func:`linkeval.report.disclosure.suppress`
(suppressed cells hold "*"), returns a matplotlib Figure, labels axes in plain words and plots
aggregates only. Suppressed values are left out of the plot and named in a note underneath.
"""

from __future__ import annotations

import functools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from linkeval.report.disclosure import as_numbers
from linkeval.vocab import plain

PALETTE = sns.color_palette("colorblind")
WIDTH = 7.5  # inches: fits an A4 page or a laptop screen


RC = {"figure.dpi": 110, "savefig.dpi": 110, "axes.titleweight": "bold",
      "axes.spines.top": False, "axes.spines.right": False}


def themed(plot):
    """Draw ``plot`` in the linkeval look (white grid, colour-blind palette, readable sizes)
    without touching the session's own matplotlib settings."""

    @functools.wraps(plot)
    def draw(*args, **kwargs):
        with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.95), \
                sns.color_palette("colorblind"), plt.rc_context(RC):
            return plot(*args, **kwargs)

    return draw


def _note_suppressed(fig, labels: list[str]) -> None:
    if labels:
        shown = ", ".join(map(str, labels[:8])) + (" ..." if len(labels) > 8 else "")
        fig.text(0.01, 0.005, f"Not shown (small numbers, *): {shown}", fontsize=8,
                 color="0.35", ha="left", va="bottom")


def _label(code) -> str:
    return plain(code)


@themed
def referral_trend(per_month: pd.DataFrame, title: str = "Referrals per month") -> plt.Figure:
    """Monthly referrals (bars) with the rolling mean (line)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
    counts = as_numbers(per_month["referrals"])
    ax.bar(per_month["month"], counts, width=20, color=PALETTE[0], alpha=0.6, label="Referrals")
    if "rolling_mean" in per_month:
        ax.plot(per_month["month"], as_numbers(per_month["rolling_mean"]), color=PALETTE[3],
                lw=2, label="3-month average")
    ax.set(title=title, xlabel="Month", ylabel="Referrals")
    ax.legend(frameon=False, loc="upper left")
    missing = per_month.loc[counts.isna(), "month"]
    _note_suppressed(fig, [m.strftime("%b %Y") for m in pd.to_datetime(missing)])
    fig.tight_layout()
    return fig


@themed
def bar_chart(table: pd.DataFrame, category: str, value: str = "pct", title: str = "",
              xlabel: str = "% of referrals", top: int | None = None) -> plt.Figure:
    """Horizontal bars of one value per category (sources, reasons, assets, modes)."""
    data = table.assign(_v=as_numbers(table[value]))
    suppressed = data.loc[data["_v"].isna() & (table[value].astype(str) == "*"), category]
    data = data.dropna(subset=["_v"])
    data = data[data["_v"] > 0].sort_values("_v", ascending=True)
    if top:
        data = data.tail(top)
    fig, ax = plt.subplots(figsize=(WIDTH, 0.35 * max(len(data), 3) + 1.2))
    ax.barh([_label(c) for c in data[category]], data["_v"], color=PALETTE[0])
    for y, v in enumerate(data["_v"]):
        ax.text(v, y, f" {v:.0f}", va="center", fontsize=8)
    ax.set(title=title, xlabel=xlabel, ylabel="")
    _note_suppressed(fig, [_label(c) for c in suppressed])
    fig.tight_layout()
    return fig


@themed
def funnel(table: pd.DataFrame, title: str = "From referral to follow-up") -> plt.Figure:
    """The engagement funnel: people reaching each stage."""
    data = table.assign(_n=as_numbers(table["n"]))
    fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
    labels = [_label(s) for s in data["stage"]][::-1]
    ax.barh(labels, data["_n"][::-1], color=PALETTE[2])
    for y, (n, pct) in enumerate(zip(data["_n"][::-1], data["pct_of_referred"][::-1],
                                     strict=True)):
        if pd.notna(n):
            pct_text = f" ({float(pct):.0f}%)" if str(pct) != "*" and pd.notna(pct) else ""
            ax.text(n, y, f" {n:,.0f}{pct_text}", va="center", fontsize=8)
    ax.set(title=title, xlabel="People", ylabel="")
    _note_suppressed(fig, [_label(s) for s in data.loc[data["_n"].isna(), "stage"]])
    fig.tight_layout()
    return fig


@themed
def forest_plot(table: pd.DataFrame, label: str, estimate: str = "estimate",
                ci_low: str = "ci_low", ci_high: str = "ci_high",
                title: str = "Estimates with 95% confidence intervals",
                xlabel: str = "Difference (95% CI)", reference: float = 0.0) -> plt.Figure:
    """Point estimates with confidence intervals, one row per label (sites, moderators)."""
    data = table.assign(_e=as_numbers(table[estimate]), _lo=as_numbers(table[ci_low]),
                        _hi=as_numbers(table[ci_high]))
    suppressed = data.loc[data["_e"].isna(), label].astype(str).tolist()
    data = data.dropna(subset=["_e", "_lo", "_hi"]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(WIDTH, 0.45 * max(len(data), 2) + 1.3))
    y = np.arange(len(data))[::-1]
    ax.errorbar(data["_e"], y, xerr=[data["_e"] - data["_lo"], data["_hi"] - data["_e"]],
                fmt="o", color=PALETTE[0], ecolor=PALETTE[0], capsize=3)
    ax.axvline(reference, color="0.4", lw=1, ls="--")
    ax.set_yticks(y, [str(v) for v in data[label]])
    ax.set(title=title, xlabel=xlabel, ylabel="")
    _note_suppressed(fig, suppressed)
    fig.tight_layout()
    return fig


@themed
def change_plot(change_table: pd.DataFrame, title: str = "Average change from baseline"
                ) -> plt.Figure:
    """Mean change and 95% CI per score, each on its own scale (one small panel each)."""
    data = change_table.assign(_m=as_numbers(change_table["mean_change"]),
                               _lo=as_numbers(change_table["ci_low"]),
                               _hi=as_numbers(change_table["ci_high"]))
    suppressed = data.loc[data["_m"].isna(), "instrument"].tolist()
    data = data.dropna(subset=["_m", "_lo", "_hi"]).reset_index(drop=True)
    n = max(len(data), 1)
    fig, axes = plt.subplots(n, 1, figsize=(WIDTH, 0.75 * n + 1.0), squeeze=False)
    for ax, (_, row) in zip(axes[:, 0], data.iterrows(), strict=False):
        ax.errorbar([row["_m"]], [0], xerr=[[row["_m"] - row["_lo"]], [row["_hi"] - row["_m"]]],
                    fmt="o", color=PALETTE[0], capsize=4)
        ax.axvline(0, color="0.4", lw=1, ls="--")
        span = max(abs(row["_lo"]), abs(row["_hi"]), 1e-9) * 1.3
        ax.set_xlim(-span, span)
        ax.set_yticks([0], [_label(row["instrument"])])
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("Change in score, follow-up minus baseline (95% CI)")
    _note_suppressed(fig, [_label(s) for s in suppressed])
    fig.tight_layout()
    return fig


@themed
def band_heatmap(table: pd.DataFrame, title: str = "Movement between bands") -> plt.Figure:
    """Baseline band (rows) by follow-up band (columns), counts after disclosure control."""
    wide = table.pivot(index="baseline_band", columns="followup_band", values="n")
    order = list(dict.fromkeys(table["baseline_band"]))
    wide = wide.reindex(index=order, columns=order)
    numbers = wide.apply(as_numbers)
    annot = wide.astype(str)
    fig, ax = plt.subplots(figsize=(WIDTH * 0.7, 0.5 * len(order) + 1.8))
    sns.heatmap(numbers, annot=annot, fmt="", cmap="Blues", cbar=False, ax=ax,
                linewidths=0.5, linecolor="white")
    ax.set(title=title, xlabel="Band at follow-up", ylabel="Band at baseline")
    fig.tight_layout()
    return fig
