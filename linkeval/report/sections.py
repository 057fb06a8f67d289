"""Report sections: canonical tables and a disclosure rule in, released blocks out.

Each function here is pure: it takes the processed tables (already limited to the page's site)
and a :class:`~linkeval.report.disclosure.Rule`, computes its statistics with
:mod:`linkeval.stats`, passes every number through the rule, and returns a
:class:`~linkeval.report.blocks.Section` of tables, figures and sentences, with one
output-check row per released block. Nothing here reads files or displays anything, so every
section is unit-tested without a notebook; :class:`linkeval.report.notebook.Report` shows them.

Sentences are built only from numbers that a table of the same section releases.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from linkeval.instruments import band_labels, score_names, score_spec, score_title
from linkeval.report import plots
from linkeval.report.blocks import Figure, Section, Table, Text
from linkeval.report.disclosure import SUPPRESSED, Rule, as_numbers
from linkeval.report.formats import fmt, fmt_p
from linkeval.stats import describe
from linkeval.stats.attrition import attrition_table, followup_rates
from linkeval.stats.change import band_transitions, paired_change
from linkeval.stats.models import analysis_frame, moderator_analysis, multilevel_model
from linkeval.stats.models import sensitivity_analyses as _sensitivity
from linkeval.stats.pooling import pooled_change
from linkeval.stats.realist import CAVEAT, assess_programme_theory
from linkeval.vocab import AGE_BANDS, plain

HEADLINE_SCORES = ("swemwbs", "ucla3")
MONTHS_HIDDEN_FOR_QUARTERS = 0.5  # more than half the months hidden: show quarters
XMR_MIN_PERIODS = 12
VARIABLE_LABELS = {
    "age_band": "Age band",
    "sex": "Sex",
    "ethnicity": "Ethnic group",
    "imd_quintile": "Deprivation (IMD quintile, 1 = most deprived)",
    "rural_urban": "Rural or urban area (2021 classification)",
}


def _release(
    section: Section, rule: Rule, item: str, kind: str, safe: pd.DataFrame, note: str = ""
) -> pd.DataFrame:
    section.release(item, kind, safe, rule=rule.name, note=note)
    return safe


def _say(
    section: Section, rule: Rule, text: str, note: str = "numbers from the tables above"
) -> None:
    section.add(Text(text))
    section.release(text[:80], "sentence", rule=rule.name, note=note)


def scores_present(pairs: pd.DataFrame) -> list[str]:
    """The scores this study (or site) has pairs for, in the instruments' order."""
    present = set(pairs["instrument"].dropna().unique())
    return [name for name in score_names() if name in present]


# --------------------------------------------------------------------------------------------
# Site descriptive


def headline(t: dict, rule: Rule) -> Section:
    """Referrals, people and the stages they reached."""
    s = Section("headline")
    funnel = describe.engagement_funnel(t["referrals"], t["pairs"])
    rows = [
        ("Referrals", len(t["referrals"])),
        ("People referred", t["referrals"]["person_id"].nunique()),
    ]
    rows += [
        (stage.capitalize(), int(n))
        for stage, n in zip(funnel["stage"], funnel["n"], strict=True)
        if stage != "referred"
    ]
    safe = _release(
        s,
        rule,
        "key numbers",
        "table",
        rule.suppress(pd.DataFrame(rows, columns=["measure", "n"]), counts=["n"]),
    )
    s.add(Table(safe, {"measure": "Measure", "n": "Number"}))
    n = safe.set_index("measure")["n"]
    _say(
        s,
        rule,
        f"This report covers **{fmt(n['Referrals'], 0)}** referrals of "
        f"**{fmt(n['People referred'], 0)}** people to the link worker service.",
    )
    return s


def per_period(referrals: pd.DataFrame, rule: Rule) -> tuple[pd.DataFrame, str]:
    """Released referral counts per month, or per quarter when most months would be hidden.

    Averages are worked out from released counts only: a 3-period average is shown only where
    all three periods are shown, and XmR limits (mean +/- 2.66 x mean moving range, NHS
    "Making Data Count") only when every period is shown and there are at least 12.
    """
    months = describe.referrals_per_month(referrals)
    label = "Month"
    counts = months["referrals"]
    if (
        len(months)
        and rule.suppress(months, counts=["referrals"])["referrals"].eq(SUPPRESSED).mean()
        > MONTHS_HIDDEN_FOR_QUARTERS
    ):
        quarter = pd.to_datetime(months["month"]).dt.to_period("Q").dt.to_timestamp()
        months = months.groupby(quarter)["referrals"].sum().rename_axis("month").reset_index()
        label, counts = "Quarter", months["referrals"]
    table = pd.DataFrame({"period": months["month"], "referrals": counts})
    safe = rule.suppress(table, counts=["referrals"])
    shown = as_numbers(safe["referrals"])
    safe["rolling_mean"] = shown.rolling(3, min_periods=3).mean().astype(object)
    safe["rolling_mean"] = safe["rolling_mean"].where(safe["rolling_mean"].notna(), "-")
    if len(shown) >= XMR_MIN_PERIODS and shown.notna().all():
        centre = shown.mean()
        moving_range = shown.diff().abs().mean()
        safe["mean"] = centre
        safe["lower"] = max(centre - 2.66 * moving_range, 0)
        safe["upper"] = centre + 2.66 * moving_range
    return safe, label


def referrals_over_time(t: dict, rule: Rule) -> Section:
    s = Section("referrals over time")
    safe, label = per_period(t["referrals"], rule)
    _release(
        s,
        rule,
        f"referrals per {label.lower()}",
        "figure and table",
        safe,
        note="averages and control limits from released counts only",
    )
    title = f"Referrals per {label.lower()}"
    s.add(Figure(plots.referral_trend(safe, title=title, period_label=label)))
    shown = safe.assign(period=[_period_text(p, label) for p in safe["period"]])
    columns = {"period": label, "referrals": "Referrals", "rolling_mean": "3-period average"}
    if "mean" in safe:
        columns |= {"lower": "Lower control limit", "upper": "Upper control limit"}
    s.add(Table(shown, columns, decimals={"rolling_mean": 1, "lower": 1, "upper": 1}))
    if len(safe):
        last = as_numbers(safe["referrals"].tail(3))
        recent = (
            f"; in the last three {label.lower()}s there were about "
            f"{fmt(last.mean(), 0)} a {label.lower()}"
            if last.notna().all() and len(last) == 3
            else ""
        )
        limits = (
            " The dashed lines are control limits: a period outside them, or a long run "
            "on one side of the average, suggests a real change rather than chance."
            if "mean" in safe
            else ""
        )
        _say(
            s,
            rule,
            f"Referrals ran from {_period_text(safe['period'].iloc[0], label)} to "
            f"{_period_text(safe['period'].iloc[-1], label)}{recent}.{limits}",
        )
    return s


def _period_text(period, label: str) -> str:
    period = pd.Timestamp(period)
    return f"{period:%B %Y}" if label == "Month" else f"{period.year} Q{period.quarter}"


def _categories(
    s: Section,
    rule: Rule,
    table: pd.DataFrame,
    category: str,
    caption: str,
    heading: str,
    xlabel: str = "% of referrals",
    single_response: bool = True,
    top: int | None = None,
) -> pd.DataFrame:
    """Counts and percentages of one categorical variable, as a chart and its table."""
    safe = rule.suppress(
        table,
        counts=["n", "denominator"],
        percentages={"pct": ("n", "denominator")},
        totals=single_response,
    )
    _release(s, rule, caption, "figure and table", safe)
    s.add(
        Figure(plots.bar_chart(safe, category, title=caption, xlabel=xlabel, top=top)),
        Table(by_size(safe), {category: heading, "n": "Number", "pct": "%"}, codes=(category,)),
    )
    return safe


def sources(t: dict, rule: Rule) -> Section:
    s = Section("sources")
    safe = _categories(
        s,
        rule,
        describe.referral_sources(t["referrals"]),
        "referral_source",
        "Who referred people",
        "Referred by",
    )
    top = _top(safe, "referral_source")
    _say(s, rule, f"Most referrals came from **{top}**." if top else "Too few referrals to show.")
    return s


def reasons(t: dict, rule: Rule) -> Section:
    s = Section("reasons")
    table = describe.referral_reasons(t["referrals"], t["referral_reasons"])
    safe = _categories(
        s, rule, table, "reason", "Why people were referred", "Reason", single_response=False
    )
    _say(
        s,
        rule,
        "A referral can give several reasons, so the percentages add up to more than "
        f"100. The commonest was **{_top(safe, 'reason') or '-'}**.",
    )
    return s


def outcomes(t: dict, rule: Rule) -> Section:
    """How referrals ended: completed, declined, not contactable, ..."""
    s = Section("outcomes")
    table = describe.outcomes(t["referrals"])
    safe = _categories(s, rule, table, "outcome", "How referrals ended", "Outcome")
    top = _top(safe, "outcome")
    _say(
        s,
        rule,
        f"The commonest recorded outcome was **{top}**."
        if top
        else "Too few referrals to show their outcomes.",
    )
    return s


def who(t: dict, rule: Rule) -> Section:
    """Table 1: age, sex, ethnicity and deprivation of the people referred."""
    s = Section("who is referred")
    t1 = describe.table_one(t["referrals"])
    counts = rule.suppress(
        t1[t1["statistic"] == "n (%)"],
        counts=["n"],
        percentages={"pct": ("n", None)},
        by="variable",
        totals=True,
    )
    _release(s, rule, "characteristics", "table", counts)
    age = rule.suppress(
        t1[t1["statistic"] != "n (%)"],
        counts=["missing"],
        statistics=["mean", "sd", "median", "q1", "q3"],
        n="n",
    )
    _release(s, rule, "age summary", "sentence", age)
    counts = counts.assign(variable=counts["variable"].map(VARIABLE_LABELS))
    s.add(
        Table(
            counts,
            {"variable": "Characteristic", "level": "Group", "n": "Referrals", "pct": "%"},
            codes=("level",),
            group="variable",
        )
    )
    mean, median = age.iloc[0], age.iloc[1]
    s.add(
        Text(
            f"Age: mean {fmt(mean['mean'])} (SD {fmt(mean['sd'])}); median "
            f"{fmt(median['median'], 0)} (IQR {fmt(median['q1'], 0)} to "
            f"{fmt(median['q3'], 0)}); age not recorded for {fmt(mean['missing'], 0)}."
        )
    )
    return s


def funnel(t: dict, rule: Rule) -> Section:
    s = Section("engagement")
    table = describe.engagement_funnel(t["referrals"], t["pairs"])
    referred = table["n"].iloc[0]
    safe = rule.suppress(
        table.assign(_referred=referred),
        counts=["n"],
        percentages={"pct_of_referred": ("n", "_referred")},
    )
    _release(s, rule, "engagement funnel", "figure and table", safe)
    s.add(
        Figure(plots.funnel(safe)),
        Table(
            safe,
            {"stage": "Stage", "n": "People", "pct_of_referred": "% of referred"},
            codes=("stage",),
        ),
    )
    engaged = safe.set_index("stage").loc["engaged"]
    _say(
        s,
        rule,
        f"{fmt(engaged['pct_of_referred'], 0)}% of referrals led to at least one "
        "attended contact with a link worker.",
    )
    return s


def contacts(t: dict, rule: Rule) -> Section:
    s = Section("contacts")
    stats = pd.concat(
        [
            describe.contacts_per_referral(t["referrals"]),
            describe.days_to_first_contact(t["referrals"]),
        ],
        ignore_index=True,
    )
    safe = rule.suppress(
        stats, counts=["n", "missing"], statistics=["mean", "sd", "median", "q1", "q3"], n="n"
    )
    _release(s, rule, "contacts per referral, days to first contact", "table", safe)
    s.add(
        Table(
            safe,
            {
                "measure": "Measure",
                "n": "Referrals",
                "mean": "Mean",
                "sd": "SD",
                "median": "Median",
                "q1": "Lower quartile",
                "q3": "Upper quartile",
            },
            codes=("measure",),
        )
    )
    if not len(t["contacts"]):
        _say(
            s,
            rule,
            "This site exports contact counts only, so contact modes and attendance "
            "are not available.",
            note="no numbers",
        )
        return s
    modes = _categories(
        s,
        rule,
        describe.contact_modes(t["contacts"]),
        "mode",
        "How contacts took place",
        "Way of meeting",
        xlabel="% of contacts",
    )
    dna = rule.suppress(
        describe.dna_rate(t["contacts"]),
        counts=["contacts", "dna"],
        percentages={"pct_dna": ("dna", "contacts")},
        complements=["dna"],
    )
    _release(s, rule, "did not attend", "table", dna)
    s.add(
        Table(
            dna,
            {
                "contacts": "Contacts with attendance recorded",
                "dna": "Did not attend",
                "pct_dna": "% did not attend",
            },
        )
    )
    _say(
        s,
        rule,
        f"The commonest way of meeting was **{_top(modes, 'mode') or '-'}**; "
        f"{fmt(dna['pct_dna'].iloc[0], 0)}% of booked contacts were missed.",
    )
    return s


def onward(t: dict, rule: Rule) -> Section:
    s = Section("onward referrals")
    if not len(t["onward_referrals"]):
        _say(s, rule, "This site exports no onward referrals, or has none yet.", note="no numbers")
        return s
    safe = _categories(
        s,
        rule,
        describe.onward_by_asset(t["onward_referrals"]),
        "asset_type",
        "Where link workers referred people on",
        "Community asset",
        xlabel="% of onward referrals",
    )
    _say(
        s,
        rule,
        f"Link workers most often connected people with **{_top(safe, 'asset_type') or '-'}**.",
    )
    return s


def data_quality(summary: pd.DataFrame, log: pd.DataFrame, rule: Rule) -> Section:
    """Rows read, kept and rejected per export, and why rows were rejected."""
    s = Section("data quality")
    safe = rule.suppress(
        summary, counts=["rows_read", "rows_kept", "rows_rejected", "rows_flagged"]
    )
    _release(s, rule, "rows per export", "table", safe)
    s.add(
        Table(
            safe,
            {
                "table": "Export",
                "rows_read": "Rows read",
                "rows_kept": "Kept",
                "rows_rejected": "Rejected",
                "rows_flagged": "Kept with a warning",
            },
            codes=("table",),
        )
    )
    if len(log):
        rejected = (
            log[log["action"] == "rejected"]
            .groupby(["table", "rule"])
            .size()
            .rename("n")
            .reset_index()
        )
        safe = _release(
            s, rule, "reasons rows were rejected", "table", rule.suppress(rejected, counts=["n"])
        )
        s.add(
            Table(
                safe,
                {"table": "Export", "rule": "Reason rejected", "n": "Rows"},
                codes=("table", "rule"),
                group="table",
            )
        )
    _say(
        s,
        rule,
        "Every row of every export is either kept or rejected for a stated reason; "
        "analysts can see each one in the cleaning log.",
        note="no numbers",
    )
    return s


# --------------------------------------------------------------------------------------------
# Site change


def change_counts(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per score: pairs, and how many improved or worsened reliably or by the MID.

    Counts, not percentages, so that the gate can work percentages out from rounded counts.
    Denominators are the pairs with the indicator known (reliable change is not defined for a
    single question).
    """
    p = pairs[pairs["followup"].notna() & pairs["in_window"].astype(bool)]
    rows = []
    for name, part in p.groupby("instrument", sort=False):
        row = {"instrument": name, "n": len(part)}
        for flag, col in (
            ("improved_reliably", "n_improved"),
            ("deteriorated_reliably", "n_deteriorated"),
            ("met_mid_improvement", "n_mid"),
        ):
            known = part[flag].dropna()
            row[col] = int(known.astype(bool).sum())
            row[f"{col}_of"] = len(known)
        rows.append(row)
    return pd.DataFrame(rows)


def change_summary(t: dict, rule: Rule) -> Section:
    """Mean change per score, with its CI, p-value and standardised change."""
    s = Section("change summary")
    table = paired_change(t["pairs"], n_boot=0)  # pages show no bootstrap interval
    if table.empty:
        _say(s, rule, "No one has answered a questionnaire at both times yet.", note="no numbers")
        return s
    table = table.assign(title=table["instrument"].map(score_title))
    safe = _release(
        s,
        rule,
        "change per score",
        "figure and table",
        rule.suppress(
            table,
            counts=["n"],
            statistics=[
                "baseline_mean",
                "followup_mean",
                "mean_change",
                "ci_low",
                "ci_high",
                "p_value",
                "d_z",
            ],
            n="n",
        ),
    )
    s.add(
        Figure(plots.change_plot(safe.assign(instrument=safe["title"]))),
        Table(
            safe,
            {
                "title": "Measure",
                "n": "People",
                "baseline_mean": "Before",
                "followup_mean": "After",
                "mean_change": "Change",
                "ci_low": "95% CI from",
                "ci_high": "to",
                "p_value": "p",
                "d_z": "Standardised change (d_z)",
            },
            decimals={"d_z": 2},
        ),
    )
    _say(
        s,
        rule,
        "Change is the score at follow-up (9-12 months) minus the score at the first "
        "meeting, among people who answered both; for loneliness, depression and anxiety "
        "scores a fall is an improvement. Standardised change (d_z) is the average change "
        "divided by how much change varied between people.",
        note="no numbers",
    )
    return s


def instrument(t: dict, rule: Rule, name: str, lonely_threshold: int | None = None) -> Section:
    """Reliable change, important change and band movements for one score."""
    s = Section(score_title(name))
    pairs = t["pairs"]
    counts = change_counts(pairs[pairs["instrument"] == name])
    if counts.empty:
        _say(
            s,
            rule,
            f"No one has answered {score_title(name)} at both times yet.",
            note="no numbers",
        )
        return s
    spec = score_spec(name)
    safe = rule.suppress(
        counts,
        counts=[
            "n",
            "n_improved",
            "n_deteriorated",
            "n_mid",
            "n_improved_of",
            "n_deteriorated_of",
            "n_mid_of",
        ],
        percentages={
            "pct_improved": ("n_improved", "n_improved_of"),
            "pct_deteriorated": ("n_deteriorated", "n_deteriorated_of"),
            "pct_mid": ("n_mid", "n_mid_of"),
        },
    )
    _release(s, rule, "reliable and important change", "table", safe)
    columns = {
        "n": "People",
        "n_improved": "Reliably improved",
        "pct_improved": "%",
        "n_deteriorated": "Reliably worse",
        "pct_deteriorated": "%",
        "n_mid": "Improved by an important amount",
        "pct_mid": "%",
    }
    if len(spec.items) == 1:
        columns = {
            k: v for k, v in columns.items() if "improved" not in k and "deteriorated" not in k
        }
        _say(
            s,
            rule,
            "Reliable change needs a scale of several questions, so it is not worked "
            "out for a single question.",
            note="no numbers",
        )
    if not counts["n_mid_of"].any():  # no minimal important difference is set for this score
        columns = {k: v for k, v in columns.items() if k not in ("n_mid", "pct_mid")}
    s.add(Table(safe, columns))
    if not band_labels(spec):
        return s
    bands, test = band_transitions(pairs, name)
    shown = rule.suppress(bands, counts=["n"])
    _release(s, rule, "band movements", "figure", shown)
    wide = shown.pivot(index="baseline_band", columns="followup_band", values="n")
    order = list(dict.fromkeys(shown["baseline_band"]))
    wide = wide.reindex(index=order, columns=order).reset_index()
    wide.attrs = {"kinds": {band: "count" for band in order}}
    s.add(
        Figure(
            plots.band_heatmap(
                shown,
                title=f"{score_title(name)}: band before and after",
                footnote=rule.short_footnote,
            ),
            data=Table(
                wide,
                {
                    "baseline_band": "At baseline (rows), at follow-up (columns)",
                    **{band: band for band in order},
                },
            ),
        )
    )
    row = test.iloc[0]
    p = rule.table_test(row["p_value"], bands["n"])
    s.release(
        "band movement test",
        "p-value",
        rule=rule.name,
        smallest=float(bands.loc[bands["n"] > 0, "n"].min()) if (bands["n"] > 0).any() else np.nan,
        n_suppressed=int(p == SUPPRESSED),
        note="shown only when no cell of the table is hidden",
    )
    text = fmt_p(p) if p != SUPPRESSED else "* (not shown: some cells of the table are hidden)"
    s.add(
        Text(
            f"Test that as many people moved up as down between bands ({row['test']}): p = {text}."
        )
    )
    return s


def attrition(t: dict, rule: Rule) -> Section:
    """Who was followed up, and whether they differ from those who were not."""
    s = Section("follow-up")
    pairs, refs = t["pairs"], t["referrals"]
    rates = followup_rates(pairs, by="site")
    rates["title"] = rates["instrument"].map(score_title)
    safe = rule.suppress(
        rates,
        counts=["n_baseline", "n_followed_up"],
        percentages={"pct_followed_up": ("n_followed_up", "n_baseline")},
    )
    _release(s, rule, "follow-up rates", "table", safe)
    s.add(
        Table(
            safe,
            {
                "title": "Measure",
                "n_baseline": "Answered at first meeting",
                "n_followed_up": "Followed up in 9-12 months",
                "pct_followed_up": "% followed up",
            },
        )
    )
    name = next(
        (n for n in (*HEADLINE_SCORES, *scores_present(pairs)) if (pairs["instrument"] == n).any()),
        None,
    )
    if name is None:
        return s
    table = attrition_table(pairs, refs, instrument=name)
    groups = table[table["statistic"] == "n (%)"].copy()
    totals = groups.groupby("variable")[["followed_up", "not_followed_up"]].transform("sum")
    groups["rest_followed_up"] = totals["followed_up"] - groups["followed_up"]
    groups["rest_not_followed_up"] = totals["not_followed_up"] - groups["not_followed_up"]
    safe = rule.suppress(
        groups,
        counts=["followed_up", "not_followed_up"],
        percentages={
            "pct_followed_up": ("followed_up", None),
            "pct_not_followed_up": ("not_followed_up", None),
        },
        by="variable",
        statistics=["smd"],
        n=["followed_up", "not_followed_up", "rest_followed_up", "rest_not_followed_up"],
        complements=["followed_up", "not_followed_up"],
    )
    _release(
        s,
        rule,
        "characteristics by follow-up",
        "table",
        safe,
        note="standardised differences need every cell of their 2x2 table to meet the rule",
    )
    safe["variable"] = safe["variable"].map(VARIABLE_LABELS)
    s.add(
        Table(
            safe,
            {
                "variable": "Characteristic",
                "level": "Group",
                "pct_followed_up": "% of followed up",
                "pct_not_followed_up": "% of not followed up",
                "smd": "Standardised difference",
            },
            decimals={"smd": 2},
            codes=("level",),
            group="variable",
        )
    )
    base = table[table["statistic"] == "mean (SD)"].iloc[0]
    sizes = pairs[pairs["instrument"] == name]
    n_yes = int((sizes["followup"].notna() & sizes["in_window"].astype(bool)).sum())
    n_no = len(sizes) - n_yes
    values = {
        k: rule.statistic(base[k], n_yes, n_no) for k in ("followed_up", "not_followed_up", "smd")
    }
    s.release(
        "baseline score by follow-up",
        "sentence",
        rule=rule.name,
        smallest=min(n_yes, n_no),
        n_suppressed=sum(v == SUPPRESSED for v in values.values()),
    )
    s.add(
        Text(
            f"Average {score_title(name)} at the first meeting: "
            f"{fmt(values['followed_up'])} among people followed up and "
            f"{fmt(values['not_followed_up'])} among those not followed up "
            f"(standardised difference {fmt(values['smd'], 2)}). A difference beyond about "
            "0.1 either way means results may not apply to everyone referred."
        )
    )
    return s


# --------------------------------------------------------------------------------------------
# Cross-site

# Beyond this many sites, outcomes by site is one row a site (the % of each outcome).
MANY_SITES = 12
# Site context attributes are combined into groups while they make at most this many.
MAX_GROUPS = 6
CONTEXT_LABELS = {
    "host": {"vcse": "VCSE-hosted", "pcn": "PCN-hosted"},
    "rural": {True: "rural", False: "urban"},
}


def context_label(key: str, value) -> str:
    """One site context attribute in words: ``host: vcse`` -> "VCSE-hosted".

    >>> context_label("host", "vcse"), context_label("rural", False), context_label("coastal", True)
    ('VCSE-hosted', 'urban', 'coastal')
    >>> context_label("caseload", "high"), context_label("coastal", None)
    ('caseload: High', 'coastal: not recorded')
    """
    known = CONTEXT_LABELS.get(key, {})
    if isinstance(value, bool | str) and value in known:
        return known[value]
    name = plain(key).lower()
    if value is None:
        return f"{name}: not recorded"
    if isinstance(value, bool):
        return name if value else f"not {name}"
    return f"{name}: {plain(value)}"


def grouping_fields(context: dict[str, dict], codes: list[str]) -> list[str]:
    """The context attributes (config order) that sort ``codes`` into 2 to MAX_GROUPS groups:
    plain values (text, yes/no, numbers), a site without one counting as "not recorded"."""
    keys = list(dict.fromkeys(k for code in codes for k in context.get(code, {})))
    fields = []
    for key in keys:
        values = [context.get(code, {}).get(key) for code in codes]
        if not all(v is None or isinstance(v, str | bool | int | float) for v in values):
            continue
        if 2 <= len(set(values)) <= MAX_GROUPS:
            fields.append(key)
    return fields


def site_groups(context: dict[str, dict] | None, codes: list[str]) -> pd.Series | None:
    """Site code -> its context group ("PCN-hosted, rural"), or None without a grouping.

    The grouping attributes (:func:`grouping_fields`) are combined in config order while
    they make at most MAX_GROUPS groups. A site's context is public (the study config), so
    naming it releases nothing about people.

    >>> ctx = {"A": {"host": "vcse", "rural": False}, "B": {"host": "pcn", "rural": True},
    ...        "C": {"host": "pcn", "rural": False}}
    >>> site_groups(ctx, ["A", "B", "C"]).tolist()
    ['VCSE-hosted, urban', 'PCN-hosted, rural', 'PCN-hosted, urban']
    """
    if not context or not codes:
        return None
    chosen: list[str] = []
    for key in grouping_fields(context, codes):
        combos = {tuple(context.get(c, {}).get(k) for k in [*chosen, key]) for c in codes}
        if len(combos) <= MAX_GROUPS:
            chosen.append(key)
    if not chosen:
        return None
    labels = [
        ", ".join(context_label(k, context.get(code, {}).get(k)) for k in chosen) for code in codes
    ]
    return pd.Series([label[:1].upper() + label[1:] for label in labels], index=codes)


def _grouped(frame: pd.DataFrame, groups: pd.Series | None) -> pd.DataFrame:
    """``frame`` (a ``site`` column of codes) with each row's ``group``, in group order
    (otherwise as it was); unchanged without groups."""
    if groups is None:
        return frame
    out = frame.assign(group=frame["site"].astype(str).map(groups).fillna("Other").to_numpy())
    return out.iloc[np.argsort(out["group"].to_numpy(dtype=str), kind="stable")]


def sites_side_by_side(
    t: dict, rule: Rule, site_names: dict[str, str], context: dict[str, dict] | None = None
) -> Section:
    """Each site's engagement funnel, one row a site; grouped by the sites' context (the
    study config's ``context:``, site code -> attributes) when given."""
    s = Section("sites side by side")
    funnel_by_site = describe.engagement_funnel(t["referrals"], t["pairs"], by="site")
    wide = funnel_by_site.pivot(index="site", columns="stage", values="n").reset_index()
    wide.columns.name = None
    safe = _release(
        s,
        rule,
        "engagement by site",
        "table",
        rule.suppress(wide, counts=list(describe.FUNNEL_STAGES)),
    )
    groups = site_groups(context, list(safe["site"].astype(str)))
    safe = _grouped(safe, groups)
    safe["site"] = safe["site"].map(site_names)
    columns = {"site": "Site", **{st: st.capitalize() for st in describe.FUNNEL_STAGES}}
    if groups is not None:
        columns = {"group": "Context", **columns}
    s.add(Table(safe, columns, group="group" if groups is not None else None))
    _say(
        s,
        rule,
        "Sites differ in size and in how far people get from referral to follow-up.",
        note="no numbers",
    )
    return s


def outcomes_by_site(
    t: dict, rule: Rule, site_names: dict[str, str], context: dict[str, dict] | None = None
) -> Section:
    """Referral outcomes at each site: a row per site and outcome, or beyond MANY_SITES
    sites one row a site (its referrals and the % of each outcome); sites in context groups
    when ``context`` is given."""
    s = Section("outcomes by site")
    table = describe.outcomes(t["referrals"], by="site")
    safe = rule.suppress(
        table,
        counts=["n", "denominator"],
        percentages={"pct": ("n", "denominator")},
        by="site",
        totals=True,
    )
    _release(s, rule, "referral outcomes by site", "table", safe)
    groups = site_groups(context, list(dict.fromkeys(safe["site"].astype(str))))
    if safe["site"].nunique() > MANY_SITES:
        s.add(_outcomes_per_site(safe, site_names, groups))
        return s
    shown = _grouped(safe[safe["n"].astype(str) != "0"], groups)
    s.add(
        Table(
            shown.assign(site=lambda f: f["site"].map(site_names)),
            {"site": "Site", "outcome": "Outcome", "n": "Referrals", "pct": "%"},
            codes=("outcome",),
            group="site",
        )
    )
    return s


def _outcomes_per_site(
    safe: pd.DataFrame, site_names: dict[str, str], groups: pd.Series | None
) -> Table:
    """The controlled outcomes table reshaped, one row a site: its referrals (the rounded
    denominator) and each outcome's released %, with the audit marks carried over."""
    outcomes = list(dict.fromkeys(safe["outcome"]))
    sites = list(dict.fromkeys(safe["site"]))
    denominators = safe.attrs.get("denominators", {}).get("pct", {})
    # Without the audit attrs while slicing: pandas deep-copies them into every slice (at
    # 200 sites that was 9 s of copying).
    bare = safe.copy(deep=False)
    bare.attrs = {}
    rows, marks = [], {o: {} for o in outcomes}
    for k, code in enumerate(sites):
        part = bare[bare["site"] == code]
        row = {"site": code, "denominator": part["denominator"].iloc[0]}
        for index, record in part.iterrows():
            row[record["outcome"]] = record["pct"]
            marks[record["outcome"]][k] = denominators.get(index, part["denominator"].iloc[0])
        rows.append(row)
    wide = pd.DataFrame(rows, columns=["site", "denominator", *outcomes])
    wide.attrs = {
        **{k: v for k, v in safe.attrs.items() if k not in ("kinds", "denominators")},
        "kinds": {"denominator": "count", **dict.fromkeys(outcomes, "pct")},
        "denominators": marks,
    }
    wide = _grouped(wide, groups)
    wide["site"] = wide["site"].map(site_names)
    columns = {"site": "Site", "denominator": "Referrals"}
    columns.update({o: f"{plain(o)} %" for o in outcomes})
    if groups is not None:
        columns = {"group": "Context", **columns}
    return Table(
        wide,
        columns,
        caption="Percentage of each site's referrals with each outcome",
        group="group" if groups is not None else None,
    )


def change_by_site(
    t: dict,
    rule: Rule,
    name: str,
    site_names: dict[str, str],
    context: dict[str, dict] | None = None,
) -> Section:
    """Each site's mean change, and the sites pooled by a random-effects meta-analysis.

    The pooled change rests on every site's pairs, so it is shown only when every pooled site
    meets the rule; the person-level mean (all pairs as one group) is shown beside it for
    comparison only, since its interval ignores differences between sites.

    With ``context`` (site code -> the config's ``context:`` attributes) the sites are
    grouped by context (:func:`site_groups`) and, within a group, ordered by their released
    change (hidden ones last, in site order); without it, more than MANY_SITES sites are
    ordered by change. More sites than one figure holds (``plots.FOREST_MAX_ROWS``) are
    drawn as several figures, a group or part of one each, on one scale, each with the pooled
    diamond and prediction interval.
    """
    s = Section(f"{score_title(name)} by site")
    pairs = t["pairs"]
    table = paired_change(pairs[pairs["instrument"] == name], by="site", n_boot=0)
    if table.empty:
        _say(s, rule, f"No site has {score_title(name)} at both times yet.", note="no numbers")
        return s
    table["site_name"] = table["site"].map(site_names)
    safe = _release(
        s,
        rule,
        f"{name} change by site",
        "figure and table",
        rule.suppress(table, counts=["n"], statistics=["mean_change", "ci_low", "ci_high"], n="n"),
    )
    groups = site_groups(context, list(safe["site"].astype(str)))
    if groups is not None or len(safe) > MANY_SITES:
        safe = _grouped(_by_change(safe), groups)
    rows = _pooled_rows(s, rule, name, pairs, table)
    head = rows.iloc[0] if len(rows) else None
    shown = head is not None and head["mean_change"] != SUPPRESSED
    diamond = (
        {
            "label": "All sites (pooled)",
            **{k: head[v] for k, v in POOLED_KEYS.items()},
        }
        if shown
        else None
    )
    s.add(*_site_forests(safe, name, diamond, "group" if groups is not None else None))
    columns = {
        "site_name": "Site",
        "n": "People",
        "mean_change": "Change",
        "ci_low": "95% CI from",
        "ci_high": "to",
        "pi_low": "New site: from",
        "pi_high": "to",
    }
    if groups is not None:
        columns = {"group": "Context", **columns}
        rows = rows.assign(group="") if len(rows) else rows  # the pooled rows: no context
    s.add(
        Table(
            pd.concat([safe, rows], ignore_index=True) if len(rows) else safe,
            columns,
            group="group" if groups is not None else None,
        )
    )
    text = (
        "Each dot is a site's average change with its 95% confidence interval; intervals "
        "that cross the dashed line are consistent with no change."
    )
    if groups is not None:
        text += " Sites are grouped by their context and, within a group, ordered by change."
    if shown:
        text += (
            f" Pooled across sites, allowing for differences between them, the change was "
            f"{fmt(head['mean_change'])} ({fmt(head['ci_low'])} to {fmt(head['ci_high'])}); "
            f"a new site like these could expect a change between {fmt(head['pi_low'])} "
            f"and {fmt(head['pi_high'])} (the prediction interval)."
        )
    _say(s, rule, text, note="pooled numbers from the table above")
    return s


POOLED_KEYS = {
    "estimate": "mean_change",
    "ci_low": "ci_low",
    "ci_high": "ci_high",
    "pi_low": "pi_low",
    "pi_high": "pi_high",
}


def _pooled_rows(
    s: Section, rule: Rule, name: str, pairs: pd.DataFrame, table: pd.DataFrame
) -> pd.DataFrame:
    """The pooled (random-effects) and person-level rows, released only when every pooled
    site meets the rule (``n=["n", "smallest"]``)."""
    pooled = pooled_change(pairs[pairs["instrument"] == name], site_changes=table)
    if not len(pooled):
        return pd.DataFrame()
    p = pooled.iloc[0]
    smallest = int(table["n"].min())
    rows = pd.DataFrame(
        [
            {
                "site_name": f"All sites, pooled ({p['k']} sites; random effects)",
                "n": p["n"],
                "mean_change": p["estimate"],
                "ci_low": p["ci_low"],
                "ci_high": p["ci_high"],
                "pi_low": p["pi_low"],
                "pi_high": p["pi_high"],
                "smallest": smallest,
            },
            {
                "site_name": "All people, ignoring site (for comparison)",
                "n": p["n"],
                "mean_change": p["person_level_estimate"],
                "ci_low": p["person_level_ci_low"],
                "ci_high": p["person_level_ci_high"],
                "pi_low": np.nan,
                "pi_high": np.nan,
                "smallest": smallest,
            },
        ]
    )
    return _release(
        s,
        rule,
        f"{name} pooled change",
        "figure and table",
        rule.suppress(
            rows,
            counts=["n"],
            statistics=["mean_change", "ci_low", "ci_high", "pi_low", "pi_high"],
            n=["n", "smallest"],
        ),
        note="pooled estimates need every pooled site to meet the rule",
    )


def pooled_changes(t: dict, rule: Rule, names: list[str]) -> Section:
    """Each score's change pooled across sites (random effects), one row a score: the summary
    the cross-site page gives when it has too many sites to draw every score site by site.

    A score's row is released only when every pooled site meets the rule, as in
    :func:`change_by_site`.
    """
    s = Section("Every score, pooled across sites")
    pairs = t["pairs"]
    rows = []
    for name in names:
        table = paired_change(pairs[pairs["instrument"] == name], by="site", n_boot=0)
        if table.empty:
            continue
        pooled = _pooled_rows(s, rule, name, pairs, table)
        if len(pooled):
            rows.append(pooled.iloc[[0]].assign(score=score_title(name), sites=len(table)))
    if not rows:
        _say(s, rule, "No score has pairs at more than one site yet.", note="no numbers")
        return s
    s.add(
        Table(
            pd.concat(rows, ignore_index=True),
            {
                "score": "Score",
                "sites": "Sites",
                "n": "People",
                "mean_change": "Pooled change",
                "ci_low": "95% CI from",
                "ci_high": "to",
                "pi_low": "New site: from",
                "pi_high": "to",
            },
        )
    )
    _say(
        s,
        rule,
        "With this many sites the page draws only the headline score site by site; each "
        "score's change at each site is on that site's page. A pooled change is shown only "
        "when every site it pools meets the disclosure rule.",
        note="no numbers",
    )
    return s


def _by_change(safe: pd.DataFrame) -> pd.DataFrame:
    """Sites by released change, largest first; hidden ones last in their usual order (so the
    order says nothing about them)."""
    values = as_numbers(safe["mean_change"])
    return safe.iloc[np.argsort(-values.fillna(-np.inf).to_numpy(), kind="stable")]


def _site_forests(
    safe: pd.DataFrame, name: str, diamond: dict | None, group: str | None
) -> list[Figure]:
    """The change-by-site forest plot; more sites than one figure holds as several figures
    (whole groups together where they fit), on one x scale, each with the pooled diamond."""
    title = f"{score_title(name)}: change by site"
    shown = safe[as_numbers(safe["mean_change"]).notna().to_numpy()]
    capacity = plots.FOREST_MAX_ROWS - 1 - (1 if diamond else 0)
    chunks = _forest_chunks(shown, group, capacity)
    if len(chunks) <= 1:
        chunks = [safe]  # one figure: its note names the hidden sites
    xlim = None
    if len(chunks) > 1:
        ends = [as_numbers(shown[c]) for c in ("ci_low", "ci_high")]
        if diamond:
            ends += [as_numbers(pd.Series([diamond[k] for k in POOLED_KEYS]))]
        low, high = min(float(e.min()) for e in ends), max(float(e.max()) for e in ends)
        pad = 0.05 * (high - low or 1.0)
        xlim = (min(low, 0.0) - pad, max(high, 0.0) + pad)
    figures = []
    for k, chunk in enumerate(chunks):
        part = f" ({k + 1} of {len(chunks)})" if len(chunks) > 1 else ""
        if group and k and chunk[group].iloc[0] == chunks[k - 1][group].iloc[-1]:
            first = chunk[group] == chunk[group].iloc[0]  # a group carried over
            chunk = chunk.assign(**{group: chunk[group].where(~first, chunk[group] + " (cont.)")})
        figures.append(
            Figure(
                plots.forest_plot(
                    chunk,
                    "site_name",
                    "mean_change",
                    title=title + part,
                    xlabel="Change in score (95% CI)",
                    pooled=diamond,
                    group=group,
                    xlim=xlim,
                )
            )
        )
    if len(chunks) > 1 and len(shown) < len(safe):
        hidden = safe.loc[~safe.index.isin(shown.index), "site_name"].astype(str).tolist()
        figures[-1].figure.text(
            0.01,
            0.005,
            f"Not shown (small numbers, *): {len(hidden)} sites, listed in the table",
            fontsize=8,
            color="0.35",
            ha="left",
            va="bottom",
        )
    return figures


def _forest_chunks(shown: pd.DataFrame, group: str | None, capacity: int) -> list[pd.DataFrame]:
    """Rows in figures of at most ``capacity`` rows, headings included: whole groups while
    they fit, a group too large for one figure in parts."""
    if len(shown) + (shown[group].nunique() if group else 0) <= capacity:
        return [shown]
    blocks = [g for _, g in shown.groupby(group, sort=False)] if group else [shown]
    chunks: list[pd.DataFrame] = []
    current: list[pd.DataFrame] = []
    used = 0
    for block in blocks:
        size = len(block) + (1 if group else 0)
        if size > capacity:  # a group too large for one figure: in even parts of its own
            if current:
                chunks.append(pd.concat(current))
                current, used = [], 0
            per = capacity - (1 if group else 0)
            parts = -(-len(block) // per)
            step = -(-len(block) // parts)
            chunks += [block.iloc[i : i + step] for i in range(0, len(block), step)]
            continue
        if used + size > capacity:
            chunks.append(pd.concat(current))
            current, used = [], 0
        current.append(block)
        used += size
    if current:
        chunks.append(pd.concat(current))
    return chunks


def collapse_small_levels(
    frame: pd.DataFrame, column: str, minimum: int, ordered: list
) -> tuple[pd.DataFrame, list[str]]:
    """Merge each level of an ordered variable that has fewer than ``minimum`` people into its
    neighbour (the next level, or the previous one for the last), until none is small.

    Returns the frame and one phrase per merge ("18-24 with 25-34").
    """
    values = frame[column].astype(object)
    levels = [lv for lv in ordered if (values == lv).any()]
    merged = []
    while len(levels) > 1:
        counts = values.value_counts()
        small = [lv for lv in levels if counts.get(lv, 0) < minimum]
        if not small:
            break
        i = levels.index(small[0])
        j = i + 1 if i + 1 < len(levels) else i - 1
        first, last = sorted((i, j))
        new = f"{levels[first].split(' to ')[0]} to {levels[last].split(' to ')[-1]}"
        values = values.replace({levels[i]: new, levels[j]: new})
        merged.append(f"{levels[i]} with {levels[j]}")
        levels[first : last + 1] = [new]
    return frame.assign(**{column: values}), merged


def multilevel(t: dict, rule: Rule, name: str) -> Section:
    s = Section("multilevel model")
    frame = analysis_frame(t["pairs"], t["referrals"], name)
    if len(frame) < 20:
        _say(s, rule, "Too few people with both scores for a model.", note="no numbers")
        return s
    notes = []
    covariates = ["age_band", "sex", "imd_quintile", "n_attended"]
    frame, merged = collapse_small_levels(frame, "age_band", rule.minimum, list(AGE_BANDS))
    if merged:
        notes.append("age bands merged: " + "; ".join(merged))
    sex_counts = frame["sex"].value_counts()
    if (sex_counts < rule.minimum).any() or len(sex_counts) < 2:
        covariates.remove("sex")
        notes.append("sex left out, as one of its groups is too small to show")
    table = multilevel_model(frame, covariates=covariates)
    table = table[~table["term"].isin(["Intercept"])].copy()
    references = [
        f"{VARIABLE_LABELS[c]}: {plain(sorted(frame[c].astype(str).unique())[0])}"
        for c in ("age_band", "sex")
        if c in covariates
    ]
    table = table.join(_term_counts(frame, table["term"], covariates))
    table["term"] = table["term"].map(_term_label)
    safe = rule.suppress(
        table,
        counts=[],
        statistics=["estimate", "ci_low", "ci_high", "p_value"],
        n=["n", "n_level", "n_reference"],
    )
    _release(
        s,
        rule,
        "model coefficients",
        "table",
        safe,
        note="each coefficient needs its level and its reference level to meet the rule; "
        + "; ".join(notes),
    )
    s.add(
        Table(
            safe,
            {
                "term": "Term",
                "estimate": "Estimate",
                "ci_low": "95% CI from",
                "ci_high": "to",
                "p_value": "p",
            },
            decimals={"estimate": 2, "ci_low": 2, "ci_high": 2},
        )
    )
    changed = (
        (" So that no result rests on a few people: " + "; ".join(notes) + ".") if notes else ""
    )
    singular = (
        " The sites differed too little for their variation to be estimated (a "
        "singular fit), so the model treats them as alike."
        if "singular" in table and table["singular"].any()
        else ""
    )
    _say(
        s,
        rule,
        f"Follow-up {score_title(name)} by baseline score and personal "
        f"characteristics, allowing for differences between sites ({table['model'].iloc[0]}). "
        "Each group is compared with a reference group ("
        + "; ".join(references)
        + ")."
        + changed
        + singular,
        note="no numbers",
    )
    return s


def _term_counts(frame: pd.DataFrame, terms: pd.Series, covariates: list[str]) -> pd.DataFrame:
    """People in each categorical term's level and in its reference level (all, for numbers)."""
    rows = {}
    for i, term in terms.items():
        n_level = n_reference = len(frame)
        for column in covariates:
            prefix = f"C({column})[T."
            if str(term).startswith(prefix):
                level = str(term)[len(prefix) : -1]
                values = frame[column].astype(str)
                n_level = int((values == level).sum())
                n_reference = int((values == sorted(values.unique())[0]).sum())
        rows[i] = {"n_level": n_level, "n_reference": n_reference}
    return pd.DataFrame.from_dict(rows, orient="index")


MODERATORS = {
    "lonely_baseline": "Lonely at first meeting (UCLA-3)",
    "most_deprived": "Living in the most deprived tenth of areas",
    "n_attended": "Each extra attended contact",
    "reason_finance_debt_benefits": "Referred for money, debt or benefits",
    "reason_housing": "Referred for housing",
}


def moderators(t: dict, rule: Rule, name: str, lonely_threshold: int = 6) -> Section:
    s = Section("for whom")
    frame = analysis_frame(
        t["pairs"], t["referrals"], name, t["referral_reasons"], lonely_threshold=lonely_threshold
    )
    if len(frame) < 20:
        _say(s, rule, "Too few people with both scores for this analysis.", note="no numbers")
        return s
    parts = []
    for moderator, label in MODERATORS.items():
        if moderator in frame and frame[moderator].dropna().nunique() > 1:
            out = moderator_analysis(frame, moderator)
            out["label"] = [
                label if lvl in ("True", "per unit") else f"{label}: {lvl}" for lvl in out["level"]
            ]
            parts.append(out)
    table = pd.concat(parts, ignore_index=True)
    table["n_reference"] = table["n_reference"].fillna(table["n"])
    if "change_estimate" not in table:
        table["change_estimate"] = np.nan
    safe = rule.suppress(
        table,
        counts=["n_level", "n_reference"],
        statistics=["estimate", "ci_low", "ci_high", "p_value", "change_estimate"],
        n=["n_level", "n_reference"],
    )
    _release(s, rule, "moderators", "figure and table", safe)
    s.add(
        Figure(
            plots.forest_plot(
                safe,
                "label",
                title=f"{score_title(name)}: who changed more?",
                xlabel="Difference in change (95% CI)",
            )
        ),
        Table(
            safe,
            {
                "label": "Context",
                "n_level": "People",
                "n_reference": "Compared with",
                "estimate": "Difference",
                "ci_low": "95% CI from",
                "ci_high": "to",
                "p_value": "p",
                "change_estimate": "Check: from change scores",
            },
            decimals={"estimate": 2, "ci_low": 2, "ci_high": 2, "change_estimate": 2},
        ),
    )
    _say(
        s,
        rule,
        "Each row compares the change of people in a context with everyone else, at "
        "the same starting score. The last column estimates the same difference from raw "
        "change scores: where the two disagree, the groups started from different levels and "
        "part of the difference may be regression to the mean. These are associations in "
        "observational data, not proof of cause.",
        note="no numbers",
    )
    return s


def programme_theory(
    t: dict, rule: Rule, cmocs, site_context: dict[str, dict], lonely_threshold: int = 6
) -> Section:
    """What works, for whom, in what circumstances: each CMOC against the data."""
    s = Section("programme theory")
    if not cmocs:
        _say(
            s,
            rule,
            "The study config has no programme theory (`programme_theory:`) to test yet.",
            note="no numbers",
        )
        return s
    table = assess_programme_theory(
        cmocs, t, site_context=site_context, lonely_threshold=lonely_threshold
    )
    safe = rule.suppress(
        table,
        counts=["n_context", "n_comparison"],
        statistics=["estimate", "ci_low", "ci_high", "p_value", "p_holm", "mde"],
        n=["n_context", "n_comparison"],
    )
    _release(s, rule, "programme theory", "figure and table", safe)
    hidden = safe["estimate"] == SUPPRESSED
    safe["reading"] = safe["reading"].where(~hidden, "inconclusive (small numbers)")
    safe["reading_holm"] = safe["reading_holm"].where(~hidden, "inconclusive (small numbers)")
    safe["level"] = safe["level"].map({"site": "sites", "person": "people"}).fillna("")
    safe["label"] = safe["id"] + ": " + safe["contrast"].str.replace(" vs everyone else", "")
    s.add(
        Figure(
            plots.forest_plot(
                safe,
                "label",
                title="Difference in improvement, context group vs everyone else",
                xlabel="Extra improvement in score points (95% CI); right = more improvement",
            )
        ),
        Table(
            safe,
            {
                "id": "CMOC",
                "context": "Context",
                "mechanism": "Mechanism",
                "outcome": "Expected outcome",
            },
        ),
        Table(
            safe,
            {
                "id": "CMOC",
                "level": "Compared across",
                "n_context": "People in context",
                "n_comparison": "Compared with",
                "estimate": "Difference",
                "ci_low": "95% CI from",
                "ci_high": "to",
                "p_value": "p",
                "p_holm": "p (Holm)",
                "mde": "Detectable difference",
                "reading": "Reading",
                "reading_holm": "Reading (Holm)",
            },
            decimals={"estimate": 2, "ci_low": 2, "ci_high": 2, "mde": 1},
        ),
    )
    counts = safe["reading"].value_counts()
    consistent, against = counts.get("consistent", 0), counts.get("not consistent", 0)
    _say(
        s,
        rule,
        f"Of {len(safe)} configurations, {consistent} are consistent with the data, "
        f"{against} run the other way and {len(safe) - consistent - against} are "
        f"inconclusive. {CAVEAT} p (Holm) allows for testing several configurations at once. "
        "The detectable difference is the smallest difference the data had an 80% chance of "
        "finding: where a reading is inconclusive and a smaller difference would matter, more "
        "data would help. Site-level contexts (such as who hosts the link workers) are "
        "compared across sites, not people, and rest on only a few sites, so their intervals "
        "are wide.",
        note="counts of configurations, not of people",
    )
    return s


def sensitivity(t: dict, rule: Rule, name: str, seed: int = 0) -> Section:
    s = Section("sensitivity analyses")
    table = _sensitivity(t["pairs"], t["referrals"], name, seed=seed)
    # An imputed estimate rests on the people with a follow-up and on those without one.
    table["n_missing"] = (table["n"] - table["n_observed"]).where(table["n"] > table["n_observed"])
    safe = rule.suppress(
        table,
        counts=["n", "n_observed"],
        statistics=["mean_change", "ci_low", "ci_high"],
        n=["n_observed"],
    )
    few_missing = table["n_missing"].notna() & ~table["n_missing"].ge(rule.minimum)
    safe.loc[few_missing, ["mean_change", "ci_low", "ci_high"]] = SUPPRESSED
    _release(
        s,
        rule,
        "sensitivity analyses",
        "table",
        safe,
        note="imputed rows also need enough people without a follow-up",
    )
    s.add(
        Table(
            safe,
            {
                "analysis": "Analysis",
                "n": "People",
                "n_observed": "With follow-up",
                "mean_change": "Change",
                "ci_low": "95% CI from",
                "ci_high": "to",
            },
            decimals={"mean_change": 2, "ci_low": 2, "ci_high": 2},
        )
    )
    _say(
        s,
        rule,
        "If the first three rows agree, the result does not hinge on who was followed "
        "up or when. The rows marked 'not at random' ask how much less the people without a "
        "follow-up would have had to improve for the conclusion to change; the tipping point "
        "is where the interval reaches no change.",
        note="no numbers",
    )
    return s


# --------------------------------------------------------------------------------------------
# Helpers


TERM_LABELS = {
    "baseline": "Score at first meeting (per point)",
    "imd_quintile": "Deprivation (per IMD quintile, 1 = most deprived)",
    "n_attended": "Each extra attended contact",
    "site variance (random intercept)": "Variation between sites (variance)",
}


def _term_label(term: str) -> str:
    """'C(sex)[T.male]' -> 'Sex: male'; 'n_attended' -> 'Each extra attended contact'."""
    if term.startswith("C(") and ")[T." in term:
        variable, level = term[2:].rstrip("]").split(")[T.", 1)
        return f"{VARIABLE_LABELS.get(variable, plain(variable))}: {plain(level)}"
    return TERM_LABELS.get(term, plain(term))


def by_size(safe: pd.DataFrame) -> pd.DataFrame:
    """Rows with any count, largest shown count first (as in the charts); suppressed rows last,
    in their usual order, so that the order gives nothing away about their size."""
    shown = safe[safe["n"].astype(str) != "0"]
    values = as_numbers(shown["n"])
    return shown.iloc[np.argsort(-values.fillna(-1).to_numpy(), kind="stable")]


def _top(safe: pd.DataFrame, column: str) -> str | None:
    values = as_numbers(safe["n"])
    if values.notna().sum() == 0 or values.max() == 0:
        return None
    return plain(safe.loc[values.idxmax(), column])
