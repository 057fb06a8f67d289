"""Figures: built from disclosure-controlled tables, suppressed values left out and named."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from linkeval.report import plots


def _texts(fig) -> str:
    return " ".join(t.get_text() for t in fig.texts)


def test_bar_chart_leaves_out_suppressed_and_says_so():
    table = pd.DataFrame({"referral_source": ["gp", "self", "pharmacy"], "pct": [60.0, 20.0, "*"]})
    fig = plots.bar_chart(table, "referral_source", title="Sources")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Self-referral", "GP"]
    assert "Pharmacy" in _texts(fig)
    plt.close(fig)


def test_every_figure_function_returns_a_figure():
    months = pd.DataFrame(
        {
            "period": pd.date_range("2024-01-01", periods=3, freq="MS"),
            "referrals": [10, "*", 15],
            "rolling_mean": ["-", "-", "-"],
        }
    )
    funnel = pd.DataFrame(
        {"stage": ["referred", "engaged"], "n": [100, 60], "pct_of_referred": [100, 60]}
    )
    forest = pd.DataFrame(
        {
            "site": ["A", "B", "C"],
            "estimate": [1.0, 0.5, "*"],
            "ci_low": [0.2, -0.3, "*"],
            "ci_high": [1.8, 1.3, "*"],
        }
    )
    change = pd.DataFrame(
        {
            "instrument": ["swemwbs", "phq9"],
            "mean_change": [1.6, -1.5],
            "ci_low": [1.3, -2.0],
            "ci_high": [1.9, -0.9],
        }
    )
    bands = pd.DataFrame(
        {
            "baseline_band": ["lonely", "lonely", "not lonely", "not lonely"],
            "followup_band": ["lonely", "not lonely", "lonely", "not lonely"],
            "n": [250, 65, "*", 85],
        }
    )
    figs = [
        plots.referral_trend(months),
        plots.funnel(funnel),
        plots.forest_plot(forest, "site"),
        plots.change_plot(change),
        plots.band_heatmap(bands),
    ]
    for fig in figs:
        assert isinstance(fig, plt.Figure)
        assert fig.axes[0].get_title()
        plt.close(fig)
    assert "C" in _texts(figs[2])  # suppressed site named in the note


def test_hidden_periods_are_marked_and_the_axis_spans_the_whole_period():
    months = pd.DataFrame(
        {
            "period": pd.date_range("2024-01-01", periods=6, freq="MS"),
            "referrals": ["*", 10, 15, 20, 15, "*"],
        }
    )
    fig = plots.referral_trend(months)
    ax = fig.axes[0]
    stars = [t for t in ax.texts if t.get_text() == "*"]
    assert len(stars) == 2  # January and June are shown as hidden, not dropped
    low, high = ax.get_xlim()
    import matplotlib.dates as mdates

    assert mdates.num2date(low).date() < pd.Timestamp("2024-01-01").date()
    assert mdates.num2date(high).date() > pd.Timestamp("2024-06-01").date()
    plt.close(fig)


def test_heatmap_shows_stars_in_hidden_cells_and_a_colour_legend():
    bands = pd.DataFrame(
        {
            "baseline_band": ["lonely", "lonely", "not lonely", "not lonely"],
            "followup_band": ["lonely", "not lonely", "lonely", "not lonely"],
            "n": [250, 65, "*", 85],
        }
    )
    fig = plots.band_heatmap(bands, footnote="* hidden (small numbers).")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "*" in texts and "250" in texts
    assert len(fig.axes) == 2  # the heatmap and its colour bar
    assert "hidden" in _texts(fig)
    plt.close(fig)


def test_labels_with_dollar_signs_are_shown_as_written():
    forest = pd.DataFrame(
        {
            "site": ["Price $5 PCN", "B"],
            "estimate": [1.0, 0.5],
            "ci_low": [0.2, -0.3],
            "ci_high": [1.8, 1.3],
        }
    )
    fig = plots.forest_plot(forest, "site")
    fig.canvas.draw()  # mathtext would raise or garble here
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0].replace("\\", "") == "Price $5 PCN"
    plt.close(fig)
