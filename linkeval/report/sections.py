"""Report sections for the steering-group notebooks.

The notebooks are thin: a heading, one call into this module, and what it displays. Each
section computes its statistics with :mod:`linkeval.stats.describe`, :mod:`linkeval.stats.change`,
:mod:`linkeval.stats.pairing` and :mod:`linkeval.stats.models`, passes every table and every chart's data
through :func:`linkeval.report.disclosure.suppress` with the study's rule, and shows a table, a figure
and one plain-English sentence.
"""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import date
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from linkeval import __version__
from linkeval.config import load_config
from linkeval.instruments import INSTRUMENTS, score_names, score_title
from linkeval.io import load_processed
from linkeval.report import plots
from linkeval.report.disclosure import SUPPRESSED, as_numbers, describe_rule, suppress
from linkeval.report.render import STYLE, fmt, fmt_p
from linkeval.stats import describe
from linkeval.stats.attrition import attrition_table, followup_rates
from linkeval.stats.change import band_transitions, paired_change
from linkeval.stats.models import (
    analysis_frame,
    moderator_analysis,
    multilevel_model,
    sensitivity_analyses,
)
from linkeval.stats.realist import CAVEAT, assess_programme_theory
from linkeval.vocab import plain

HEADLINE_SCORES = ("swemwbs", "ucla3")
_NUMERIC = __import__("re").compile(r"[-+<*]?[\d,]*\.?\d*%?|\*|-")


def _display(obj) -> None:
    from IPython.display import display

    display(obj)


def _html(text: str) -> None:
    from IPython.display import HTML

    _display(HTML(text))


def say(text: str) -> None:
    """One plain-English sentence under a table or figure."""
    from IPython.display import Markdown

    _display(Markdown(text))


class Report:
    """Everything a report notebook needs: config, processed tables, the disclosure rule."""

    def __init__(self, config: str | Path, site: str | None = None) -> None:
        self.cfg = load_config(config)
        self.site_code = site
        if site is not None:
            self.cfg.site(site)
        self.tables = load_processed(self.cfg.processed_dir)
        manifest_path = self.cfg.processed_dir / "manifest.json"
        self.manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        self.rule = self.cfg.disclosure.get("rule", "nhs_digital")
        self.min_count = self.cfg.disclosure.get("min_count")
        if site is not None:
            self.tables = {name: t[t["site"] == site] if "site" in t else t
                           for name, t in self.tables.items()}

    # -- shared display ---------------------------------------------------------------------
    @property
    def site_name(self) -> str:
        return self.cfg.sites[self.site_code].name if self.site_code else "All sites"

    def suppress(self, table: pd.DataFrame, **kwargs) -> pd.DataFrame:
        return suppress(table, rule=self.rule, min_count=self.min_count, **kwargs)

    def header(self, title: str) -> None:
        """The page banner: study, page, site, run metadata, disclosure rule, DEMO warning."""
        demo = ('<div class="le-demo">DEMO - SYNTHETIC DATA: every person in this report is '
                'made up</div>') if self.cfg.demo else ""
        meta = [("Site", f"{self.site_name}" + (f" ({self.site_code})" if self.site_code else "")),
                ("Report date", date.today().isoformat()),
                ("linkeval version", __version__),
                ("Config", self.cfg.sha256[:12]),
                ("Data", str(self.manifest.get("data_sha256", ""))[:12]),
                ("Data cleaned", str(self.manifest.get("cleaned_at", ""))[:10])]
        cells = "".join(f"<span><b>{html.escape(k)}:</b> {html.escape(v)}</span>" for k, v in meta)
        _html(f"""{STYLE}{demo}<div class="le-header"><div class="le-study">
{html.escape(self.cfg.study)}</div><h1>{html.escape(title)}</h1>
<div class="le-meta">{cells}</div>
<div class="le-rule">{html.escape(describe_rule(self.rule, self.min_count))}</div></div>""")

    def table(self, frame: pd.DataFrame, columns: dict[str, str], decimals: dict[str, int]
              | None = None, caption: str = "", codes: tuple[str, ...] = (),
              group: str | None = None) -> None:
        """Show selected columns under plain headings, numbers formatted, '*' explained.

        ``codes`` columns are shown as words; a ``group`` column is printed once per block.
        """
        decimals = decimals or {}
        frame = frame.copy()
        for col in codes:
            frame[col] = frame[col].map(plain)
        if group:
            frame[group] = frame[group].where(frame[group] != frame[group].shift(), "")
        shown = frame[list(columns)]
        head = "".join(f"<th>{html.escape(label)}</th>" for label in columns.values())
        rows, suppressed = [], False
        for record in shown.itertuples(index=False):
            cells = []
            for raw, value in zip(columns, record, strict=True):
                d = decimals.get(raw, 0 if raw == "n" or raw.startswith("n_")
                                 or raw == "denominator" else 1)
                text = fmt_p(value) if raw.startswith("p_value") else fmt(value, d)
                suppressed |= text == SUPPRESSED
                numeric = bool(_NUMERIC.fullmatch(text))
                cells.append(f'<td class="{"num" if numeric else "txt"}">{html.escape(text)}</td>')
            rows.append("<tr>" + "".join(cells) + "</tr>")
        note = ('<div class="le-note">* hidden to protect confidentiality (small numbers)</div>'
                if suppressed else "")
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        _html(f'<table class="le-table">{cap}<thead><tr>{head}</tr></thead><tbody>'
              f'{"".join(rows)}</tbody></table>{note}')

    def figure(self, fig) -> None:
        """Embed a figure as a PNG with its title as alt text (any matplotlib backend)."""
        titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
        alt = titles[0] if titles else "Chart"
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        _html(f'<img class="le-figure" alt="{html.escape(alt)}" '
              f'src="data:image/png;base64,{data}">')

    def _pct(self, table: pd.DataFrame, category: str, caption: str, top: int | None = None,
             xlabel: str = "% of referrals") -> pd.DataFrame:
        safe = self.suppress(table, counts=["n", "denominator"],
                             percentages={"pct": ("n", "denominator")})
        self.figure(plots.bar_chart(safe, category, title=caption, xlabel=xlabel, top=top))
        return safe

    # -- site descriptive -------------------------------------------------------------------
    def headline(self) -> None:
        """Key numbers: referrals, people, engaged, onward referrals, questionnaires."""
        t = self.tables
        funnel = describe.engagement_funnel(t["referrals"], t["pairs"])
        rows = [("Referrals", len(t["referrals"])),
                ("People referred", t["referrals"]["person_id"].nunique())]
        rows += [(s.capitalize(), int(n)) for s, n in zip(funnel["stage"], funnel["n"],
                                                          strict=True) if s != "referred"]
        table = self.suppress(pd.DataFrame(rows, columns=["measure", "n"]), counts=["n"])
        self.table(table, {"measure": "Measure", "n": "Number"})
        n = table.set_index("measure")["n"]
        say(f"This report covers **{fmt(n['Referrals'], 0)}** referrals of "
            f"**{fmt(n['People referred'], 0)}** people to the link worker service.")

    def referrals_over_time(self) -> None:
        per_month = describe.referrals_per_month(self.tables["referrals"])
        safe = self.suppress(per_month, counts=["referrals"])
        safe["rolling_mean"] = _rolling_safe(safe["referrals"])
        self.figure(plots.referral_trend(safe))
        recent = as_numbers(safe["referrals"].tail(3))
        if len(per_month):
            say(f"Referrals ran from {per_month['month'].min():%B %Y} to "
                f"{per_month['month'].max():%B %Y}; in the last three months there were "
                f"about {fmt(recent.mean(), 0)} a month.")

    def sources(self) -> None:
        safe = self._pct(describe.referral_sources(self.tables["referrals"]), "referral_source",
                         "Who referred people")
        self.table(_by_size(safe), {"referral_source": "Referred by", "n": "Referrals",
                                    "pct": "%"}, codes=("referral_source",))
        top = _top(safe, "referral_source")
        say(f"Most referrals came from **{top}**." if top else "Too few referrals to show.")

    def reasons(self) -> None:
        table = describe.referral_reasons(self.tables["referrals"], self.tables["referral_reasons"])
        safe = self._pct(table, "reason", "Why people were referred")
        self.table(_by_size(safe), {"reason": "Reason", "n": "Referrals", "pct": "%"},
                   codes=("reason",))
        say("A referral can give several reasons, so the percentages add up to more than 100. "
            f"The commonest was **{_top(safe, 'reason') or '-'}**.")

    def who(self) -> None:
        t1 = describe.table_one(self.tables["referrals"])
        counts = self.suppress(t1[t1["statistic"] == "n (%)"], counts=["n"],
                               percentages={"pct": ("n", None)}, by="variable")
        age = self.suppress(t1[t1["statistic"] != "n (%)"], counts=[],
                            statistics=["mean", "sd", "median", "q1", "q3"], n="n")
        age_text = (f"Age: mean {fmt(age.iloc[0]['mean'])} (SD {fmt(age.iloc[0]['sd'])}); "
                    f"median {fmt(age.iloc[1]['median'], 0)} (IQR {fmt(age.iloc[1]['q1'], 0)}-"
                    f"{fmt(age.iloc[1]['q3'], 0)}); missing {fmt(age.iloc[0]['missing'], 0)}.")
        counts = counts.assign(variable=counts["variable"].map(
            {"age_band": "Age band", "sex": "Sex", "ethnicity": "Ethnic group",
             "imd_quintile": "Deprivation (IMD quintile, 1 = most deprived)"}))
        self.table(counts, {"variable": "Characteristic", "level": "Group", "n": "Referrals",
                            "pct": "%"}, codes=("level",), group="variable")
        say(age_text)

    def funnel(self) -> None:
        table = describe.engagement_funnel(self.tables["referrals"], self.tables["pairs"])
        referred = table["n"].iloc[0]
        safe = self.suppress(table.assign(_referred=referred), counts=["n"],
                             percentages={"pct_of_referred": ("n", "_referred")})
        self.figure(plots.funnel(safe))
        self.table(safe, {"stage": "Stage", "n": "People", "pct_of_referred": "% of referred"},
                   codes=("stage",))
        engaged = safe.set_index("stage").loc["engaged"]
        say(f"{fmt(engaged['pct_of_referred'], 0)}% of referrals led to at least one attended "
            "contact with a link worker.")

    def contacts(self) -> None:
        t = self.tables
        stats = pd.concat([describe.contacts_per_referral(t["referrals"]),
                           describe.days_to_first_contact(t["referrals"])], ignore_index=True)
        safe = self.suppress(stats, counts=["n", "missing"],
                             statistics=["mean", "sd", "median", "q1", "q3"], n="n")
        self.table(safe, {"measure": "Measure", "n": "Referrals", "mean": "Mean", "sd": "SD",
                          "median": "Median", "q1": "Lower quartile", "q3": "Upper quartile"})
        if len(t["contacts"]):
            modes = self._pct(describe.contact_modes(t["contacts"]), "mode",
                              "How contacts took place", xlabel="% of contacts")
            dna = self.suppress(describe.dna_rate(t["contacts"]), counts=["contacts", "dna"],
                                percentages={"pct_dna": ("dna", "contacts")})
            self.table(dna, {"contacts": "Contacts with attendance recorded",
                             "dna": "Did not attend", "pct_dna": "% did not attend"})
            say(f"The commonest way of meeting was **{_top(modes, 'mode') or '-'}**; "
                f"{fmt(dna['pct_dna'].iloc[0], 0)}% of booked contacts were missed.")
        else:
            say("This site exports contact counts only, so contact modes and attendance are "
                "not available.")

    def onward(self) -> None:
        onward = self.tables["onward_referrals"]
        if onward.empty:
            say("This site exports no onward-referral details.")
            return
        safe = self._pct(describe.onward_by_asset(onward), "asset_type",
                         "Where people were referred on to", xlabel="% of onward referrals")
        self.table(_by_size(safe), {"asset_type": "Community asset", "n": "Onward referrals",
                                    "pct": "%"}, codes=("asset_type",))
        say(f"Link workers most often connected people with **{_top(safe, 'asset_type')}**.")

    def data_quality(self) -> None:
        summary_path = self.cfg.processed_dir / "qa" / "summary.parquet"
        summary = pd.read_parquet(summary_path)
        if self.site_code:
            summary = summary[summary["site"] == self.site_code]
        safe = self.suppress(summary, counts=["rows_read", "rows_kept", "rows_rejected",
                                              "rows_flagged"])
        self.table(safe, {"table": "Export", "rows_read": "Rows read", "rows_kept": "Kept",
                          "rows_rejected": "Rejected", "rows_flagged": "Kept with a warning"},
                   codes=("table",))
        log = self.tables.get("cleaning_log", pd.DataFrame())
        if len(log):
            rej = (log[log["action"] == "rejected"].groupby(["table", "rule"]).size()
                   .rename("n").reset_index())
            self.table(self.suppress(rej, counts=["n"]), {"table": "Export",
                       "rule": "Reason rejected", "n": "Rows"}, codes=("table", "rule"),
                       group="table")
        say("Every row of every export is either kept or rejected for a stated reason; "
            "analysts can see each one in the cleaning log.")

    # -- site change --------------------------------------------------------------------------
    def change_summary(self) -> pd.DataFrame:
        table = paired_change(self.tables["pairs"])
        table["title"] = table["instrument"].map(score_title)
        safe = self.suppress(table, counts=["n"], statistics=[
            "baseline_mean", "followup_mean", "mean_change", "ci_low", "ci_high", "p_value",
            "d_z", "pct_improved_reliably", "pct_met_mid"], n="n")
        self.table(safe, {"title": "Measure", "n": "People", "baseline_mean": "Before",
                          "followup_mean": "After", "mean_change": "Change",
                          "ci_low": "95% CI from", "ci_high": "to", "p_value": "p",
                          "d_z": "Effect size (d)"}, decimals={"d_z": 2})
        self.figure(plots.change_plot(safe.assign(instrument=safe["title"])))
        say("Change is the score at follow-up (9-12 months) minus the score at the first "
            "meeting, among people who answered both; for loneliness, depression and anxiety "
            "scores a fall is an improvement.")
        return safe

    def instrument(self, name: str) -> None:
        """Reliable change, MID and band movements for one score."""
        pairs = self.tables["pairs"]
        table = paired_change(pairs[pairs["instrument"] == name])
        if table.empty:
            say(f"No one has answered {score_title(name)} at both times yet.")
            return
        safe = self.suppress(table, counts=["n"], statistics=[
            "pct_improved_reliably", "pct_deteriorated_reliably", "pct_met_mid"], n="n")
        self.table(safe, {"n": "People", "pct_improved_reliably": "% reliably improved",
                          "pct_deteriorated_reliably": "% reliably worse",
                          "pct_met_mid": "% improved by an important amount"})
        spec = INSTRUMENTS[score_names()[name]].score(name)
        if len(spec.items) == 1:
            say("Reliable change needs a scale of several questions, so it is not worked out "
                "for a single question (shown as -).")
        if spec.bands or spec.lonely_threshold:
            bands, test = band_transitions(pairs, name)
            self.figure(plots.band_heatmap(self.suppress(bands, counts=["n"]),
                                           title=f"{score_title(name)}: band before and after"))
            t = test.iloc[0]
            enough = t["n"] >= 8
            say(f"Test that as many people moved up as down between bands ({t['test']}): "
                f"p = {fmt_p(t['p_value']) if enough else '*'}.")

    def attrition(self) -> None:
        pairs, refs = self.tables["pairs"], self.tables["referrals"]
        rates = followup_rates(pairs, by="site")
        rates["title"] = rates["instrument"].map(score_title)
        safe = self.suppress(rates, counts=["n_baseline", "n_followed_up"],
                             percentages={"pct_followed_up": ("n_followed_up", "n_baseline")})
        self.table(safe, {"title": "Measure", "n_baseline": "Answered at first meeting",
                          "n_followed_up": "Followed up in 9-12 months",
                          "pct_followed_up": "% followed up"})
        name = next((s for s in HEADLINE_SCORES if (pairs["instrument"] == s).any()), None)
        if name is None:
            return
        table = attrition_table(pairs, refs, instrument=name)
        groups = table[table["statistic"] == "n (%)"].copy()
        groups["smaller"] = groups[["followed_up", "not_followed_up"]].min(axis=1)
        safe = self.suppress(groups, counts=["followed_up", "not_followed_up"],
                             percentages={"pct_followed_up": ("followed_up", None),
                                          "pct_not_followed_up": ("not_followed_up", None)},
                             by="variable", statistics=["smd"], n="smaller")
        safe["variable"] = safe["variable"].map({"age_band": "Age band", "sex": "Sex",
                                                 "imd_quintile": "IMD quintile"})
        self.table(safe, {"variable": "Characteristic", "level": "Group",
                          "pct_followed_up": "% of followed up",
                          "pct_not_followed_up": "% of not followed up",
                          "smd": "Standardised difference"}, decimals={"smd": 2},
                   codes=("level",), group="variable")
        base = table[table["statistic"] == "mean (SD)"].iloc[0]
        sizes = pairs[pairs["instrument"] == name]
        n_yes = int((sizes["followup"].notna() & sizes["in_window"]).sum())
        enough = min(n_yes, len(sizes) - n_yes) >= 8
        say(f"Average {score_title(name)} at the first meeting: "
            f"{fmt(base['followed_up']) if enough else '*'} among people followed up and "
            f"{fmt(base['not_followed_up']) if enough else '*'} among those not followed up "
            f"(standardised difference {fmt(base['smd'], 2) if enough else '*'}). A difference "
            "beyond about 0.1 either way means results may not apply to everyone referred.")

    # -- cross-site ---------------------------------------------------------------------------
    def sites_side_by_side(self) -> None:
        t = self.tables
        funnel = describe.engagement_funnel(t["referrals"], t["pairs"], by="site")
        wide = funnel.pivot(index="site", columns="stage", values="n").reset_index()
        wide.columns.name = None
        cols = {"site": "Site", **{s: s.capitalize() for s in describe.FUNNEL_STAGES}}
        safe = self.suppress(wide, counts=list(describe.FUNNEL_STAGES))
        safe["site"] = safe["site"].map(lambda c: f"{self.cfg.sites[c].name} ({c})")
        self.table(safe, cols)
        say("Sites differ in size and in how far people get from referral to follow-up.")

    def change_by_site(self, name: str = "swemwbs") -> None:
        pairs = self.tables["pairs"]
        table = paired_change(pairs[pairs["instrument"] == name], by="site")
        if table.empty:
            say(f"No site has {score_title(name)} at both times yet.")
            return
        table["site_name"] = table["site"].map(lambda c: f"{self.cfg.sites[c].name} ({c})")
        safe = self.suppress(table, counts=["n"], statistics=["mean_change", "ci_low",
                                                               "ci_high"], n="n")
        self.figure(plots.forest_plot(safe, "site_name", "mean_change",
                                      title=f"{score_title(name)}: change by site",
                                      xlabel="Change in score (95% CI)"))
        self.table(safe, {"site_name": "Site", "n": "People", "mean_change": "Change",
                          "ci_low": "95% CI from", "ci_high": "to"})
        say("Each dot is a site's average change with its 95% confidence interval; intervals "
            "that overlap the dashed line are consistent with no change.")

    def multilevel(self, name: str = "swemwbs") -> None:
        frame = analysis_frame(self.tables["pairs"], self.tables["referrals"], name)
        if len(frame) < 20:
            say("Too few people with both scores for a model.")
            return
        table = multilevel_model(frame)
        table = table[~table["term"].isin(["Intercept"])]
        table["term"] = table["term"].map(_term_label)
        safe = self.suppress(table, counts=["n"], statistics=["estimate", "ci_low", "ci_high",
                                                              "p_value"], n="n")
        self.table(safe, {"term": "Term", "estimate": "Estimate", "ci_low": "95% CI from",
                          "ci_high": "to", "p_value": "p"}, decimals={"estimate": 2,
                                                                       "ci_low": 2, "ci_high": 2})
        say(f"Follow-up {score_title(name)} by baseline score and personal characteristics, "
            f"allowing for differences between sites ({table['model'].iloc[0]}).")

    def moderators(self, name: str = "swemwbs") -> None:
        frame = analysis_frame(self.tables["pairs"], self.tables["referrals"], name,
                               self.tables["referral_reasons"],
                               ucla3_settings=self.cfg.instrument_settings("ucla3"))
        if len(frame) < 20:
            say("Too few people with both scores for this analysis.")
            return
        parts = []
        for moderator, label in MODERATORS.items():
            if moderator in frame and frame[moderator].dropna().nunique() > 1:
                out = moderator_analysis(frame, moderator)
                out["label"] = [label if lvl in ("True", "per unit") else f"{label}: {lvl}"
                                for lvl in out["level"]]
                parts.append(out)
        table = pd.concat(parts, ignore_index=True)
        safe = self.suppress(table, counts=["n_level", "n_reference"], statistics=[
            "estimate", "ci_low", "ci_high", "p_value"], n="n_level")
        self.figure(plots.forest_plot(safe, "label", title=f"{score_title(name)}: who "
                                      "changed more?", xlabel="Difference in change (95% CI)"))
        self.table(safe, {"label": "Context", "n_level": "People", "n_reference":
                          "Compared with", "estimate": "Difference", "ci_low": "95% CI from",
                          "ci_high": "to", "p_value": "p"}, decimals={"estimate": 2,
                                                                       "ci_low": 2, "ci_high": 2})
        say("Each row compares the change of people in a context with everyone else, at the "
            "same starting score. These are associations in observational data, not proof of "
            "cause.")

    def sensitivity(self, name: str = "swemwbs") -> None:
        table = sensitivity_analyses(self.tables["pairs"], self.tables["referrals"], name)
        safe = self.suppress(table, counts=["n", "n_observed"],
                             statistics=["mean_change", "ci_low", "ci_high"], n="n_observed")
        self.table(safe, {"analysis": "Analysis", "n": "People", "n_observed": "With follow-up",
                          "mean_change": "Change", "ci_low": "95% CI from", "ci_high": "to"},
                   decimals={"mean_change": 2, "ci_low": 2, "ci_high": 2})
        say("If the three rows agree, the result does not hinge on who was followed up or "
            "when.")


    def programme_theory(self) -> None:
        """What works, for whom, in what circumstances: each CMOC against the data."""
        if not self.cfg.programme_theory:
            say("The study config has no programme theory (`programme_theory:`) to test yet.")
            return
        table = assess_programme_theory(self.cfg, self.tables)
        table["smaller"] = table[["n_context", "n_comparison"]].min(axis=1)
        safe = self.suppress(table, counts=["n_context", "n_comparison"],
                             statistics=["estimate", "ci_low", "ci_high", "p_value"],
                             n="smaller")
        safe["reading"] = [r if e != SUPPRESSED else "inconclusive (small numbers)"
                           for r, e in zip(safe["reading"], safe["estimate"], strict=True)]
        safe["label"] = safe["id"] + ": " + safe["contrast"].str.replace(" vs everyone else", "")
        self.figure(plots.forest_plot(
            safe, "label", title="Difference in improvement, context group vs everyone else",
            xlabel="Extra improvement in score points (95% CI); right = more improvement"))
        self.table(safe, {"id": "CMOC", "context": "Context", "mechanism": "Mechanism",
                          "outcome": "Expected outcome", "n_context": "People in context",
                          "n_comparison": "Compared with", "estimate": "Difference",
                          "ci_low": "95% CI from", "ci_high": "to", "reading": "Reading"},
                   decimals={"estimate": 2, "ci_low": 2, "ci_high": 2})
        counts = safe["reading"].value_counts()
        say(f"Of {len(safe)} configurations, {counts.get('consistent', 0)} are consistent with "
            f"the data, {counts.get('not consistent', 0)} run the other way and "
            f"{len(safe) - counts.get('consistent', 0) - counts.get('not consistent', 0)} are "
            f"inconclusive. {CAVEAT} Site-level contexts (such as who hosts the link workers) "
            "rest on only a few sites, so their intervals are wide.")


MODERATORS = {
    "lonely_baseline": "Lonely at first meeting (UCLA-3)",
    "most_deprived": "Living in the most deprived tenth of areas",
    "n_attended": "Each extra attended contact",
    "reason_finance_debt_benefits": "Referred for money, debt or benefits",
    "reason_housing": "Referred for housing",
}


def _term_label(term: str) -> str:
    """'C(sex)[T.male]' -> 'Sex: male'; 'n_attended' -> 'N attended'."""
    if term.startswith("C(") and ")[T." in term:
        variable, level = term[2:].rstrip("]").split(")[T.", 1)
        return f"{plain(variable)}: {level}"
    return plain(term)


def _by_size(safe: pd.DataFrame) -> pd.DataFrame:
    """Rows with any count, largest shown count first (as in the charts); suppressed rows last,
    in their usual order, so that the order gives nothing away about their size."""
    shown = safe[safe["n"] != 0]
    values = as_numbers(shown["n"])
    return shown.iloc[np.argsort(-values.fillna(-1).to_numpy(), kind="stable")]


def _top(safe: pd.DataFrame, column: str) -> str | None:
    values = as_numbers(safe["n"])
    if values.notna().sum() == 0 or values.max() == 0:
        return None
    return plain(safe.loc[values.idxmax(), column])


def _rolling_safe(counts: pd.Series, window: int = 3) -> pd.Series:
    """Rolling mean of already-controlled monthly counts (suppressed months left out)."""
    return as_numbers(counts).rolling(window, min_periods=1).mean()
