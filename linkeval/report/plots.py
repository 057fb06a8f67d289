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


RC = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def themed(plot):
    """Draw ``plot`` in the linkeval look (white grid, colour-blind palette, readable sizes)
    without touching the session's own matplotlib settings."""

    @functools.wraps(plot)
    def draw(*args, **kwargs):
        with (
            sns.axes_style("whitegrid"),
            sns.plotting_context("notebook", font_scale=0.95),
            sns.color_palette("colorblind"),
            plt.rc_context(RC),
        ):
            return plot(*args, **kwargs)

    return draw


def _note_suppressed(fig, labels: list[str]) -> None:
    if labels:
        shown = ", ".join(map(str, labels[:8])) + (" ..." if len(labels) > 8 else "")
        fig.text(
            0.01,
            0.005,
            f"Not shown (small numbers, *): {shown}",
            fontsize=8,
            color="0.35",
            ha="left",
            va="bottom",
        )


def _label(code) -> str:
    return _mathtext_safe(plain(code))


def _axes(ax, size):
    """The caller's Axes, or a new figure's."""
    if ax is not None:
        return ax.figure, ax
    return plt.subplots(figsize=size)


def _mathtext_safe(text) -> str:
    """Labels from data or config are shown as written ("$" starts maths in matplotlib)."""
    return str(text).replace("$", r"\$")


@themed
def referral_trend(
    per_period: pd.DataFrame,
    title: str = "Referrals per month",
    period_label: str = "Month",
    ax=None,
) -> plt.Figure:
    """Referrals per period (bars), hidden periods marked "*", the rolling mean (line) and,
    where given, XmR control limits (``mean``, ``lower``, ``upper`` columns).

    The axis spans every period of the data, hidden ones included.
    """
    fig, ax = _axes(ax, (WIDTH, 3.4))
    periods = pd.to_datetime(per_period["period"])
    counts = as_numbers(per_period["referrals"])
    width = 20 if period_label == "Month" else 70
    ax.bar(periods, counts.fillna(0), width=width, color=PALETTE[0], alpha=0.6, label="Referrals")
    hidden = periods[counts.isna().to_numpy()]
    top = float(np.nanmax(counts.to_numpy())) if counts.notna().any() else 1.0
    for when in hidden:
        ax.text(when, top * 0.02, "*", ha="center", va="bottom", fontsize=11, color="0.3")
    if "rolling_mean" in per_period:
        ax.plot(
            periods,
            as_numbers(per_period["rolling_mean"]),
            color=PALETTE[3],
            lw=2,
            label="3-period average (gaps where a period is hidden)",
        )
    if "mean" in per_period and as_numbers(per_period["mean"]).notna().any():
        ax.plot(periods, as_numbers(per_period["mean"]), color="0.25", lw=1, label="Average")
        for col in ("lower", "upper"):
            ax.plot(
                periods,
                as_numbers(per_period[col]),
                color="0.25",
                lw=1,
                ls="--",
                label="Control limits" if col == "upper" else None,
            )
    if len(periods):
        pad = pd.Timedelta(days=20 if period_label == "Month" else 50)
        ax.set_xlim(periods.min() - pad, periods.max() + pad)
    ax.set(title=title, xlabel=period_label, ylabel="Referrals")
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, loc="upper left", fontsize=8)
    if len(hidden):
        fig.text(
            0.01, 0.005, "* hidden: small numbers", fontsize=8, color="0.35", ha="left", va="bottom"
        )
    fig.tight_layout()
    return fig


@themed
def bar_chart(
    table: pd.DataFrame,
    category: str,
    value: str = "pct",
    title: str = "",
    xlabel: str = "% of referrals",
    top: int | None = None,
    ax=None,
) -> plt.Figure:
    """Horizontal bars of one value per category (sources, reasons, assets, modes)."""
    data = table.assign(_v=as_numbers(table[value]))
    suppressed = data.loc[data["_v"].isna() & (table[value].astype(str) == "*"), category]
    data = data.dropna(subset=["_v"])
    data = data[data["_v"] > 0].sort_values("_v", ascending=True)
    if top:
        data = data.tail(top)
    fig, ax = _axes(ax, (WIDTH, 0.35 * max(len(data), 3) + 1.2))
    ax.barh([_label(c) for c in data[category]], data["_v"], color=PALETTE[0])
    for y, v in enumerate(data["_v"]):
        ax.text(v, y, f" {v:.0f}", va="center", fontsize=8)
    ax.set(title=title, xlabel=xlabel, ylabel="")
    _note_suppressed(fig, [_label(c) for c in suppressed])
    fig.tight_layout()
    return fig


@themed
def funnel(table: pd.DataFrame, title: str = "From referral to follow-up", ax=None) -> plt.Figure:
    """The engagement funnel: people reaching each stage."""
    data = table.assign(_n=as_numbers(table["n"]))
    fig, ax = _axes(ax, (WIDTH, 3.2))
    labels = [_label(s) for s in data["stage"]][::-1]
    ax.barh(labels, data["_n"][::-1], color=PALETTE[2])
    for y, (n, pct) in enumerate(zip(data["_n"][::-1], data["pct_of_referred"][::-1], strict=True)):
        if pd.notna(n):
            pct_text = f" ({float(pct):.0f}%)" if str(pct) != "*" and pd.notna(pct) else ""
            ax.text(n, y, f" {n:,.0f}{pct_text}", va="center", fontsize=8)
    ax.set(title=title, xlabel="People", ylabel="")
    _note_suppressed(fig, [_label(s) for s in data.loc[data["_n"].isna(), "stage"]])
    fig.tight_layout()
    return fig


# Forest plots grow a row at a time, with tighter rows and smaller labels when there are many,
# up to FOREST_MAX_ROWS rows (about 8 inches: printed at most 140 mm tall, docs/design.md,
# 'Reports', the labels stay at 6 points or more); sections draw more sites as several figures.
FOREST_MAX_ROWS = 25


def forest_size(rows: int) -> tuple[float, float | None]:
    """Row height (inches) and label size (points; None: the theme's) for a forest plot of
    ``rows`` rows: 0.42 inches up to 12 rows, tighter rows and smaller labels beyond.

    >>> forest_size(10), forest_size(16), forest_size(25)
    ((0.42, None), (0.37, 9.0), (0.26, 8.5))
    """
    if rows <= 12:
        return 0.42, None
    return round(max(0.26, 0.42 - 0.0125 * (rows - 12)), 2), (9.0 if rows <= 20 else 8.5)


@themed
def forest_plot(
    table: pd.DataFrame,
    label: str,
    estimate: str = "estimate",
    ci_low: str = "ci_low",
    ci_high: str = "ci_high",
    title: str = "Estimates with 95% confidence intervals",
    xlabel: str = "Difference (95% CI)",
    reference: float = 0.0,
    pooled: dict | None = None,
    group: str | None = None,
    xlim: tuple[float, float] | None = None,
    ax=None,
) -> plt.Figure:
    """Point estimates with confidence intervals, one row per label (sites, moderators).

    ``pooled`` (keys ``label``, ``estimate``, ``ci_low``, ``ci_high`` and optionally
    ``pi_low``, ``pi_high``) adds a pooled diamond at the bottom, with its prediction interval
    as a thin line. ``group`` names a column of group headings (a site's context): rows are
    drawn in the table's order, under a bold heading where the group changes. ``xlim`` fixes
    the x-axis (so that several figures of one set share it). The figure grows with its rows
    (:func:`forest_size`).
    """
    data = table.assign(
        _e=as_numbers(table[estimate]),
        _lo=as_numbers(table[ci_low]),
        _hi=as_numbers(table[ci_high]),
    )
    suppressed = data.loc[data["_e"].isna(), label].astype(str).tolist()
    data = data.dropna(subset=["_e", "_lo", "_hi"]).reset_index(drop=True)
    # Top to bottom: each group's heading (where the group changes), then its rows.
    entries: list[tuple[str, int | None]] = []
    for i in range(len(data)):
        if group is not None and (i == 0 or data[group].iloc[i] != data[group].iloc[i - 1]):
            entries.append((str(data[group].iloc[i]), None))
        entries.append((str(data[label].iloc[i]), i))
    rows = len(entries) + (1 if pooled else 0)
    row_height, fontsize = forest_size(rows)
    fig, ax = _axes(ax, (WIDTH, row_height * max(rows, 2) + 1.3))
    top = len(entries) - 1 + (1 if pooled else 0)
    y_of = {pos: top - k for k, (_, pos) in enumerate(entries) if pos is not None}
    y = np.array([y_of[i] for i in range(len(data))], dtype=float)
    ax.errorbar(
        data["_e"],
        y,
        xerr=[data["_e"] - data["_lo"], data["_hi"] - data["_e"]],
        fmt="o",
        color=PALETTE[0],
        ecolor=PALETTE[0],
        capsize=3 if rows <= 20 else 2,
        markersize=6 if rows <= 20 else 4.5,
    )
    labels = [_mathtext_safe(text) for text, _ in entries]
    ticks = [top - k for k in range(len(entries))]
    headings = [top - k for k, (_, pos) in enumerate(entries) if pos is None]
    for yh in headings:
        if yh != top:
            ax.axhline(yh + 0.5, color="0.8", lw=0.8)
    if pooled:
        est, low, high = (float(pooled[k]) for k in ("estimate", "ci_low", "ci_high"))
        if pooled.get("pi_low") is not None and np.isfinite(float(pooled["pi_low"])):
            ax.plot(
                [float(pooled["pi_low"]), float(pooled["pi_high"])],
                [0, 0],
                color="0.35",
                lw=1.2,
                label="Prediction interval for a new site",
            )
        ax.fill(
            [low, est, high, est],
            [0, 0.25, 0, -0.25],
            color=PALETTE[3],
            label="Pooled change (95% CI)",
            zorder=3,
        )
        ax.legend(
            frameon=False,
            fontsize=8,
            loc="upper center",
            ncol=2,
            # 0.75 inch below the axes, whatever their height
            bbox_to_anchor=(0.5, -0.75 / (row_height * max(rows, 2))),
        )
        labels.append(_mathtext_safe(pooled["label"]))
        ticks.append(0)
    ax.axvline(reference, color="0.4", lw=1, ls="--")
    ax.set_yticks(ticks, labels)
    if fontsize:
        ax.tick_params(axis="y", labelsize=fontsize)
    for tick, yt in zip(ax.get_yticklabels(), ticks, strict=True):
        if yt in headings:
            tick.set_fontweight("bold")
    ax.set_ylim(-0.7, top + 0.7)  # headings have no point to widen the axis to them
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set(title=title, xlabel=xlabel, ylabel="")
    _note_suppressed(fig, [_mathtext_safe(s) for s in suppressed])
    fig.tight_layout()
    return fig


@themed
def change_plot(
    change_table: pd.DataFrame, title: str = "Average change from baseline"
) -> plt.Figure:
    """Mean change and 95% CI per score, each on its own scale (one small panel each)."""
    data = change_table.assign(
        _m=as_numbers(change_table["mean_change"]),
        _lo=as_numbers(change_table["ci_low"]),
        _hi=as_numbers(change_table["ci_high"]),
    )
    suppressed = data.loc[data["_m"].isna(), "instrument"].tolist()
    data = data.dropna(subset=["_m", "_lo", "_hi"]).reset_index(drop=True)
    n = max(len(data), 1)
    fig, axes = plt.subplots(n, 1, figsize=(WIDTH, 0.75 * n + 1.0), squeeze=False)
    for ax, (_, row) in zip(axes[:, 0], data.iterrows(), strict=False):
        ax.errorbar(
            [row["_m"]],
            [0],
            xerr=[[row["_m"] - row["_lo"]], [row["_hi"] - row["_m"]]],
            fmt="o",
            color=PALETTE[0],
            capsize=4,
        )
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
def band_heatmap(
    table: pd.DataFrame, title: str = "Movement between bands", footnote: str = "", ax=None
) -> plt.Figure:
    """Baseline band (rows) by follow-up band (columns): released counts, "*" where hidden
    (grey), with a colour legend and the disclosure rule's footnote."""
    wide = table.pivot(index="baseline_band", columns="followup_band", values="n")
    order = list(dict.fromkeys(table["baseline_band"]))
    wide = wide.reindex(index=order, columns=order)
    numbers = wide.apply(as_numbers)
    annot = wide.astype(str).replace({"nan": ""})
    fig, ax = _axes(ax, (WIDTH * 0.75, 0.5 * len(order) + 2.2))
    ax.set_facecolor("0.85")  # hidden cells (no number) show the grey background
    sns.heatmap(
        numbers,
        annot=annot,
        fmt="",
        cmap="Blues",
        cbar=True,
        ax=ax,
        linewidths=0.5,
        linecolor="white",
        cbar_kws={"label": "People (rounded)", "shrink": 0.8},
    )
    # seaborn leaves cells without a number blank: mark the hidden ones.
    for (i, j), text in np.ndenumerate(annot.to_numpy()):
        if text == "*":
            ax.text(j + 0.5, i + 0.5, "*", ha="center", va="center", fontsize=11, color="0.2")
    ax.set(title=title, xlabel="Band at follow-up", ylabel="Band at baseline")
    fig.tight_layout(rect=(0, 0.05 if footnote else 0, 1, 1))
    if footnote:
        fig.text(0.01, 0.005, footnote, fontsize=8, color="0.35", ha="left", va="bottom")
    return fig
