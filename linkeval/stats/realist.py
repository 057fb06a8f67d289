"""Programme theory: hold each context-mechanism-outcome configuration against the data.

Realist evaluation explains outcomes as context + mechanism -> outcome. The qualitative strand
proposes configurations (CMOCs); the config's ``programme_theory:`` gives each a quantitative
test: an outcome score, a context group (people for whom the context holds, compared with
everyone else) and the expected direction.

For each CMOC, :func:`assess_programme_theory` estimates how much more (or less) the outcome
improved in the context group than in the comparison group among people with the same baseline
score (the moderator model of :mod:`linkeval.stats.models`: ANCOVA with a random intercept for site),
and reads the result cautiously:

- **consistent**: the 95% CI excludes no difference, in the expected direction;
- **not consistent**: the CI excludes no difference, in the other direction;
- **inconclusive**: the CI includes no difference, or either group has fewer than
  ``min_group`` people.

These are associations in observational data. They can support or challenge a configuration;
they cannot show that the proposed mechanism is what produced the outcome.

Statistics only: DataFrames in and out, no file I/O.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from linkeval.config import CMOC, StudyConfig
from linkeval.stats.models import analysis_frame, moderator_analysis, score_direction

MIN_GROUP = 20
CAVEAT = ("Association, not mechanism: a consistent reading means the data fit the "
          "configuration, not that the mechanism caused the outcome.")
RESULT_COLUMNS = [
    "id", "context", "mechanism", "outcome", "score", "contrast", "expected", "n_context",
    "n_comparison", "n_sites", "n_by_site", "estimate", "ci_low", "ci_high", "p_value",
    "reading", "model",
]


def describe_contrast(cmoc: CMOC) -> str:
    """The two groups compared, in words."""
    if cmoc.label:
        return f"{cmoc.label} vs everyone else"
    name = cmoc.variable.replace("_", " ").replace(":", " ")
    if cmoc.condition is None:
        return f"{name} vs not"
    op, value = cmoc.condition
    words = {"equals": "=", "in": "in", "at_least": ">=", "at_most": "<="}[op]
    shown = ", ".join(map(str, value)) if isinstance(value, list) else value
    return f"{name} {words} {shown} vs the rest"


def context_frame(cfg: StudyConfig, tables: dict[str, pd.DataFrame], cmoc: CMOC) -> pd.DataFrame:
    """People with both scores for the CMOC's outcome, with ``in_context`` (True/False/NA)."""
    frame = analysis_frame(tables["pairs"], tables["referrals"], cmoc.score,
                           tables.get("referral_reasons"),
                           ucla3_settings=cfg.instrument_settings("ucla3"))
    extra = ["ethnicity", "referral_source", "n_contacts", "days_to_first_contact"]
    frame = frame.merge(tables["referrals"][["site", "referral_id", *extra]],
                        on=["site", "referral_id"], how="left")
    values = _context_values(cfg, tables, cmoc, frame)
    frame["in_context"] = _apply(values, cmoc.condition)
    return frame


def _context_values(cfg: StudyConfig, tables, cmoc: CMOC, frame: pd.DataFrame) -> pd.Series:
    kind, _, arg = cmoc.variable.partition(":")
    if kind == "reason":
        column = f"reason_{arg}"
        return frame[column] if column in frame else pd.Series(False, index=frame.index)
    if kind == "baseline_band":
        bands = tables["pairs"][tables["pairs"]["instrument"] == arg][
            ["site", "person_id", "baseline_band"]]
        merged = frame[["site", "person_id"]].merge(bands, on=["site", "person_id"], how="left")
        return pd.Series(merged["baseline_band"].to_numpy(), index=frame.index)
    if kind == "site" and arg:
        attribute = {code: site.context.get(arg) for code, site in cfg.sites.items()}
        return frame["site"].map(attribute)
    return frame[cmoc.variable]


def _apply(values: pd.Series, condition) -> pd.Series:
    """The context group as True/False (missing where the context is unknown)."""
    known = values.notna()
    if condition is None:
        out = values.astype("boolean")
    else:
        op, target = condition
        if op == "equals":
            out = values.astype(object).map(lambda v: _same(v, target))
        elif op == "in":
            out = values.astype(object).map(lambda v: any(_same(v, t) for t in target))
        elif op == "at_least":
            out = pd.to_numeric(values, errors="coerce") >= float(target)
        else:
            out = pd.to_numeric(values, errors="coerce") <= float(target)
        out = out.astype("boolean")
    return out.where(known)


def _same(value, target) -> bool:
    if isinstance(value, (bool, np.bool_)) or isinstance(target, bool):
        return bool(value) == bool(target)
    try:
        return float(value) == float(target)
    except (TypeError, ValueError):
        return str(value).strip().lower() == str(target).strip().lower()


def read(estimate: float, ci_low: float, ci_high: float, expected: str, n_context: int,
         n_comparison: int, min_group: int = MIN_GROUP) -> str:
    """consistent / not consistent / inconclusive (see the module docstring).

    ``estimate`` and its CI are differences in *improvement* (positive = the context group
    improved more), whatever the direction of the score.
    """
    if min(n_context, n_comparison) < min_group or not np.isfinite([ci_low, ci_high]).all():
        return "inconclusive"
    if ci_low <= 0 <= ci_high:
        return "inconclusive"
    more = ci_low > 0
    return "consistent" if more == (expected == "more_improvement") else "not consistent"


def assess_cmoc(cfg: StudyConfig, tables: dict[str, pd.DataFrame], cmoc: CMOC,
              min_group: int = MIN_GROUP) -> dict:
    """One CMOC's estimate, CI, p, group sizes (overall and per site) and reading."""
    frame = context_frame(cfg, tables, cmoc).dropna(subset=["in_context"])
    frame["in_context"] = frame["in_context"].astype(bool)
    n_context = int(frame["in_context"].sum())
    n_comparison = int((~frame["in_context"]).sum())
    per_site = frame.groupby("site")["in_context"].agg(["sum", "size"])
    n_by_site = "; ".join(f"{s}: {int(r['sum'])}/{int(r['size'])}" for s, r in per_site.iterrows())
    row = {"id": cmoc.id, "context": cmoc.context, "mechanism": cmoc.mechanism,
           "outcome": cmoc.outcome, "score": cmoc.score, "contrast": describe_contrast(cmoc),
           "expected": cmoc.expected, "n_context": n_context, "n_comparison": n_comparison,
           "n_sites": int(frame["site"].nunique()), "n_by_site": n_by_site,
           "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan,
           "model": ""}
    if n_context >= 2 and n_comparison >= 2:
        fit = moderator_analysis(frame, "in_context", reference="False")
        fit = fit[fit["level"] == "True"].iloc[0]
        sign = score_direction(cmoc.score)  # report as improvement, whatever the scale
        low, high = sorted((sign * fit["ci_low"], sign * fit["ci_high"]))
        row.update(estimate=sign * fit["estimate"], ci_low=low, ci_high=high,
                   p_value=fit["p_value"], model=fit["model"])
    row["reading"] = read(row["estimate"], row["ci_low"], row["ci_high"], cmoc.expected,
                          n_context, n_comparison, min_group)
    return row


def assess_programme_theory(cfg: StudyConfig, tables: dict[str, pd.DataFrame],
                          min_group: int = MIN_GROUP) -> pd.DataFrame:
    """Every CMOC of the config, one row each.

    Columns: ``id``, ``context``, ``mechanism``, ``outcome`` (the statements), ``score``,
    ``contrast`` (the groups compared), ``expected``, ``n_context``, ``n_comparison``,
    ``n_sites``, ``n_by_site`` ("site: in context/total; ..."), ``estimate`` (difference in
    improvement, context group minus comparison group, in score points; positive = more
    improvement), ``ci_low``, ``ci_high``, ``p_value``, ``reading`` and ``model``.
    ``result.attrs["caveat"]`` says what the readings can and cannot show.
    """
    rows = [assess_cmoc(cfg, tables, cmoc, min_group) for cmoc in cfg.programme_theory]
    out = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    out.attrs["caveat"] = CAVEAT
    return out
