"""Programme theory: hold each context-mechanism-outcome configuration against the data.

Realist evaluation explains outcomes as context + mechanism -> outcome. The qualitative strand
proposes configurations (CMOCs); each is given a quantitative test: an outcome score, a
context group (people for whom the context holds, compared with everyone else) and the
expected direction.

For each CMOC, :func:`assess_programme_theory` estimates how much more (or less) the outcome
improved in the context group than in the comparison group:

- a **person-level** context (lonely at referral, many contacts, a referral reason) from the
  mixed model of :func:`linkeval.stats.models.moderator_analysis` (ANCOVA, random intercept
  for site, t interval on Satterthwaite df), among people with the same baseline score;
- a **site-level** context (who hosts the link workers) from the meta-regression of the
  sites' mean changes (:func:`linkeval.stats.pooling.context_meta_regression`, Knapp-Hartung
  t on k - 2 df): such a context can only be compared across sites, so its precision rests
  on the number of sites, not people.

and reads the result cautiously:

- **consistent**: the interval excludes no difference, in the expected direction;
- **not consistent**: the interval excludes no difference, in the other direction;
- **inconclusive**: the interval includes no difference, or either group has fewer than
  ``min_group`` people.

Beside each reading: the Holm-adjusted p-value across the programme theory's CMOCs (and the
reading that uses it), and the precision: the smallest difference the data could detect with
80% power, so that "inconclusive" says whether more data (or more sites) would help.

These are associations in observational data. They can support or challenge a configuration;
they cannot show that the proposed mechanism is what produced the outcome.

Statistics only: DataFrames and plain arguments in, no config objects, no file I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from linkeval.instruments import direction
from linkeval.stats.models import analysis_frame, minimum_detectable, moderator_analysis
from linkeval.stats.pairing import pair_keys
from linkeval.stats.pooling import context_meta_regression

__all__ = ["assess_cmoc", "assess_programme_theory", "context_frame", "describe_contrast", "read"]

MIN_GROUP = 20
CAVEAT = (
    "Association, not mechanism: a consistent reading means the data fit the "
    "configuration, not that the mechanism caused the outcome."
)
RESULT_COLUMNS = [
    "id",
    "context",
    "mechanism",
    "outcome",
    "score",
    "contrast",
    "expected",
    "level",
    "n_context",
    "n_comparison",
    "n_sites",
    "n_by_site",
    "estimate",
    "std_error",
    "df",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "reading",
    "reading_holm",
    "mde",
    "precision",
    "model",
    "note",
]


def _get(cmoc: Any, name: str, default=None):
    if isinstance(cmoc, Mapping):
        return cmoc.get(name, default)
    return getattr(cmoc, name, default)


def describe_contrast(cmoc) -> str:
    """The two groups compared, in words.

    Parameters
    ----------
    cmoc : CMOC or mapping
        With ``variable``, ``condition`` and optionally ``label``
        (``linkeval.config.CMOC`` has them).

    Returns
    -------
    str

    Examples
    --------
    >>> describe_contrast({"variable": "site:host", "condition": ("equals", "vcse")})
    'site host = vcse vs the rest'
    >>> describe_contrast({"variable": "lonely_baseline", "condition": None})
    'lonely baseline vs not'
    """
    label = _get(cmoc, "label", "")
    if label:
        return f"{label} vs everyone else"
    name = _get(cmoc, "variable").replace("_", " ").replace(":", " ")
    condition = _get(cmoc, "condition")
    if condition is None:
        return f"{name} vs not"
    op, value = condition
    words = {"equals": "=", "in": "in", "at_least": ">=", "at_most": "<="}[op]
    shown = ", ".join(map(str, value)) if isinstance(value, list) else value
    return f"{name} {words} {shown} vs the rest"


def context_frame(
    cmoc,
    tables: Mapping[str, pd.DataFrame],
    site_context: Mapping[str, Mapping[str, Any]] | None = None,
    lonely_threshold: float = 6,
) -> pd.DataFrame:
    """People with both scores for the CMOC's outcome, with ``in_context`` (True/False/NA).

    Parameters
    ----------
    cmoc : CMOC or mapping
        ``score``, ``variable`` (a column of :func:`linkeval.stats.models.analysis_frame`,
        ``reason:<code>``, ``baseline_band:<score>`` or ``site:<attribute>``) and
        ``condition``.
    tables : mapping of str to DataFrame
        ``pairs``, ``referrals`` and optionally ``referral_reasons``.
    site_context : mapping, optional
        Site code -> {attribute: value}, for ``site:<attribute>`` contexts.
    lonely_threshold : float, default 6

    Returns
    -------
    DataFrame
        The analysis frame plus ``ethnicity``, ``referral_source``, ``n_contacts``,
        ``days_to_first_contact`` and ``in_context`` (nullable boolean).

    Raises
    ------
    ValueError
        When a table or column is missing, or a site attribute is not given.

    Notes
    -----
    Conditions: ``None`` (the variable is yes/no), ``("equals", x)``, ``("in", [x, ...])``,
    ``("at_least", k)``, ``("at_most", k)``; text compares case-blind, numbers as numbers.
    People whose context value is unknown get NA (left out of the comparison).

    References
    ----------
    Pawson R, Tilley N (1997) Realistic evaluation. Sage.

    Examples
    --------
    >>> pairs = pd.DataFrame({"site": ["A", "B"], "person_id": [1, 2], "referral_id": [1, 2],
    ...     "instrument": "swemwbs", "baseline": [20.0, 18.0], "followup": [23.0, 19.0],
    ...     "change": [3.0, 1.0], "in_window": True})
    >>> referrals = pd.DataFrame({"site": ["A", "B"], "referral_id": [1, 2],
    ...     "age_band": "45-64", "age_at_referral": 50, "sex": "male", "imd_decile": [1, 7],
    ...     "n_attended": [3, 6]})
    >>> frame = context_frame({"score": "swemwbs", "variable": "site:host",
    ...                        "condition": ("equals", "vcse")},
    ...                       {"pairs": pairs, "referrals": referrals},
    ...                       {"A": {"host": "vcse"}, "B": {"host": "pcn"}})
    >>> frame["in_context"].tolist()
    [True, False]
    """
    for name in ("pairs", "referrals"):
        if name not in tables:
            raise ValueError(f"tables has no {name!r} table")
    frame = analysis_frame(
        tables["pairs"],
        tables["referrals"],
        _get(cmoc, "score"),
        tables.get("referral_reasons"),
        lonely_threshold=lonely_threshold,
    )
    extra = [
        c
        for c in ("ethnicity", "referral_source", "n_contacts", "days_to_first_contact")
        if c in tables["referrals"]
    ]
    frame = frame.merge(
        tables["referrals"][["site", "referral_id", *extra]], on=["site", "referral_id"], how="left"
    )
    values = _context_values(cmoc, tables, site_context, frame)
    frame["in_context"] = _apply(values, _get(cmoc, "condition"))
    return frame


def _context_values(cmoc, tables, site_context, frame: pd.DataFrame) -> pd.Series:
    variable = _get(cmoc, "variable")
    kind, _, arg = variable.partition(":")
    if kind == "reason":
        column = f"reason_{arg}"
        return frame[column] if column in frame else pd.Series(False, index=frame.index)
    if kind == "baseline_band":
        keys = pair_keys(tables["pairs"])
        bands = tables["pairs"][tables["pairs"]["instrument"] == arg][[*keys, "baseline_band"]]
        merged = frame[keys].merge(bands, on=keys, how="left")
        return pd.Series(merged["baseline_band"].to_numpy(), index=frame.index)
    if kind == "site" and arg:
        if site_context is None:
            raise ValueError(f"context {variable!r} needs site_context (site -> attributes)")
        attribute = {code: (ctx or {}).get(arg) for code, ctx in site_context.items()}
        if all(v is None for v in attribute.values()):
            raise ValueError(f"no site in site_context has the attribute {arg!r}")
        return frame["site"].map(attribute)
    if variable not in frame:
        raise ValueError(f"unknown context variable {variable!r}")
    return frame[variable]


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


def read(
    estimate: float,
    ci_low: float,
    ci_high: float,
    expected: str,
    n_context: int,
    n_comparison: int,
    min_group: int = MIN_GROUP,
) -> str:
    """consistent / not consistent / inconclusive (see the module docstring).

    Parameters
    ----------
    estimate, ci_low, ci_high : float
        Difference in *improvement* (positive = the context group improved more), whatever
        the direction of the score, and its interval.
    expected : {"more_improvement", "less_improvement"}
    n_context, n_comparison : int
        Group sizes.
    min_group : int, default 20
        Below this in either group, the reading is "inconclusive".

    Returns
    -------
    str

    Examples
    --------
    >>> read(1.0, 0.5, 1.5, "more_improvement", 100, 100)
    'consistent'
    >>> read(0.3, -0.2, 0.8, "more_improvement", 100, 100)
    'inconclusive'
    """
    if min(n_context, n_comparison) < min_group or not np.isfinite([ci_low, ci_high]).all():
        return "inconclusive"
    if ci_low <= 0 <= ci_high:
        return "inconclusive"
    more = ci_low > 0
    return "consistent" if more == (expected == "more_improvement") else "not consistent"


def _precision(mde: float, reading: str, level: str) -> str:
    if not np.isfinite(mde):
        return "no estimate"
    more = "more sites" if level == "site" else "more people"
    text = f"80% power to detect a difference of {mde:.2g} points or more"
    if reading == "inconclusive":
        text += (
            f"; a smaller true difference could be missed, so {more} would help if a "
            "difference that small matters"
        )
    return text


def assess_cmoc(
    cmoc,
    tables: Mapping[str, pd.DataFrame],
    site_context: Mapping[str, Mapping[str, Any]] | None = None,
    lonely_threshold: float = 6,
    min_group: int = MIN_GROUP,
    confidence: float = 0.95,
    power: float = 0.8,
) -> dict:
    """One CMOC's estimate, interval, p, precision, group sizes and reading.

    Parameters
    ----------
    cmoc : CMOC or mapping
        As one item of ``cmocs`` in :func:`assess_programme_theory`.
    tables : mapping of str to DataFrame
        ``pairs``, ``referrals`` and optionally ``referral_reasons``.
    site_context : mapping, optional
        Site code -> {attribute: value}, for ``site:<attribute>`` contexts.
    lonely_threshold : float, default 6
    min_group : int, default 20
    confidence : float, default 0.95
    power : float, default 0.8

    Returns
    -------
    dict
        The keys of :func:`assess_programme_theory`'s columns except ``p_holm`` and
        ``reading_holm`` (they need every CMOC). A model that cannot be fitted leaves the
        numbers NaN, the reading "inconclusive" and says why in ``note``.

    Notes
    -----
    See :func:`assess_programme_theory`.

    References
    ----------
    Pawson R, Tilley N (1997) Realistic evaluation. Sage.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> site = np.repeat(list("ABCD"), 30)
    >>> base = rng.normal(20, 3, 120).round()
    >>> many = rng.random(120) < 0.5
    >>> follow = (base + 1 + 2 * many + rng.normal(0, 2, 120)).round()
    >>> pairs = pd.DataFrame({"site": site, "person_id": range(120), "referral_id": range(120),
    ...     "instrument": "swemwbs", "baseline": base, "followup": follow,
    ...     "change": follow - base, "in_window": True})
    >>> referrals = pd.DataFrame({"site": site, "referral_id": range(120), "age_band": "45-64",
    ...     "age_at_referral": 50, "sex": "female", "imd_decile": 5,
    ...     "n_attended": np.where(many, 8, 2)})
    >>> row = assess_cmoc({"id": "C1", "context": "c", "mechanism": "m", "outcome": "o",
    ...                    "score": "swemwbs", "variable": "n_attended",
    ...                    "condition": ("at_least", 6), "expected": "more_improvement"},
    ...                   {"pairs": pairs, "referrals": referrals})
    >>> row["level"], row["reading"], row["n_context"] + row["n_comparison"]
    ('person', 'consistent', 120)
    """
    score = _get(cmoc, "score")
    expected = _get(cmoc, "expected")
    frame = context_frame(cmoc, tables, site_context, lonely_threshold).dropna(
        subset=["in_context"]
    )
    frame["in_context"] = frame["in_context"].astype(bool)
    n_context = int(frame["in_context"].sum())
    n_comparison = int((~frame["in_context"]).sum())
    per_site = frame.groupby("site")["in_context"].agg(["sum", "size"])
    n_by_site = "; ".join(f"{s}: {int(r['sum'])}/{int(r['size'])}" for s, r in per_site.iterrows())
    site_level = bool((frame.groupby("site")["in_context"].nunique() <= 1).all())
    row = {
        "id": _get(cmoc, "id"),
        "context": _get(cmoc, "context"),
        "mechanism": _get(cmoc, "mechanism"),
        "outcome": _get(cmoc, "outcome"),
        "score": score,
        "contrast": describe_contrast(cmoc),
        "expected": expected,
        "level": "site" if site_level else "person",
        "n_context": n_context,
        "n_comparison": n_comparison,
        "n_sites": int(frame["site"].nunique()),
        "n_by_site": n_by_site,
        "estimate": np.nan,
        "std_error": np.nan,
        "df": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p_value": np.nan,
        "mde": np.nan,
        "model": "",
        "note": "",
    }
    sign = direction(score)  # report as improvement, whatever the scale
    fit = None
    try:
        if site_level and frame["in_context"].nunique() == 2:
            values = frame.groupby("site")["in_context"].first()
            fit = context_meta_regression(tables["pairs"], score, values, confidence)
        elif not site_level and n_context >= 2 and n_comparison >= 2:
            m = moderator_analysis(
                frame, "in_context", confidence=confidence, reference="False", power=power
            )
            fit = m[m["level"] == "True"].iloc[0].to_dict()
    except ValueError as err:
        row["note"] = f"not estimated: {err}"
    if fit is not None:
        low, high = sorted((sign * fit["ci_low"], sign * fit["ci_high"]))
        row.update(
            estimate=sign * fit["estimate"],
            std_error=fit["std_error"],
            df=fit["df"],
            ci_low=low,
            ci_high=high,
            p_value=fit["p_value"],
            mde=float(minimum_detectable(fit["std_error"], fit["df"], confidence, power)),
            model=fit.get("model") or fit.get("method"),
            note=fit.get("note", ""),
        )
    row["reading"] = read(
        row["estimate"], row["ci_low"], row["ci_high"], expected, n_context, n_comparison, min_group
    )
    row["precision"] = _precision(row["mde"], row["reading"], row["level"])
    return row


def assess_programme_theory(
    cmocs: Sequence,
    tables: Mapping[str, pd.DataFrame],
    site_context: Mapping[str, Mapping[str, Any]] | None = None,
    lonely_threshold: float = 6,
    min_group: int = MIN_GROUP,
    confidence: float = 0.95,
    power: float = 0.8,
) -> pd.DataFrame:
    """Every CMOC of a programme theory against the data, one row each.

    Parameters
    ----------
    cmocs : sequence of CMOC or mapping
        Each with ``id``, ``context``, ``mechanism``, ``outcome`` (the statements),
        ``score``, ``variable``, ``condition``, ``expected`` and optionally ``label``
        (``linkeval.config.CMOC`` has them: pass ``cfg.programme_theory``).
    tables : mapping of str to DataFrame
        ``pairs``, ``referrals`` and optionally ``referral_reasons``.
    site_context : mapping, optional
        Site code -> {attribute: value} (``{code: site.context for code, site in
        cfg.sites.items()}``), for ``site:<attribute>`` contexts.
    lonely_threshold : float, default 6
        UCLA-3 cut-off for ``lonely_baseline``.
    min_group : int, default 20
        Fewer people than this in either group: "inconclusive".
    confidence : float, default 0.95
    power : float, default 0.8
        For ``mde``.

    Returns
    -------
    DataFrame
        Columns: ``id``, ``context``, ``mechanism``, ``outcome`` (the statements), ``score``,
        ``contrast`` (the groups compared), ``expected``, ``level`` ("person" or "site"),
        ``n_context``, ``n_comparison``, ``n_sites``, ``n_by_site`` ("site: in
        context/total; ..."), ``estimate`` (difference in improvement, context group minus
        comparison group, in score points; positive = more improvement), ``std_error``,
        ``df``, ``ci_low``, ``ci_high``, ``p_value`` (unadjusted), ``p_holm`` (Holm-adjusted
        across the CMOCs with an estimate), ``reading`` (from the interval), ``reading_holm``
        (the same rule with p_holm < 1 - confidence instead of the interval), ``mde``
        (smallest difference detectable with ``power``), ``precision`` (in words),
        ``model`` and ``note``. ``result.attrs["caveat"]`` says what the readings can and
        cannot show.

    Raises
    ------
    ValueError
        When a table, a column or a site attribute is missing, or the outcome is not a
        known score.

    Notes
    -----
    Person-level: the ANCOVA coefficient of the context (see
    :func:`linkeval.stats.models.moderator_analysis`). Site-level (a context that is the
    same for everyone at each site): the meta-regression coefficient of the site mean
    changes on the context (:func:`linkeval.stats.pooling.context_meta_regression`). Signs
    are turned so that positive = more improvement (:func:`linkeval.instruments.direction`).
    Holm: the i-th smallest of m p-values is multiplied by (m - i + 1), then made
    monotone. MDE = (t(1 - alpha/2, df) + t(power, df)) SE.

    References
    ----------
    Pawson R, Tilley N (1997) Realistic evaluation. Sage. Holm S (1979) A simple sequentially
    rejective multiple test procedure. Scand J Stat 6:65-70. Bloom HS (1995) Eval Rev
    19:547-556.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> n = 240
    >>> site = np.repeat(list("ABCDEF"), 40)
    >>> lonely = rng.random(n) < 0.4
    >>> base = rng.normal(20, 3, n).round()
    >>> follow = (base + 1 + 1.5 * lonely + rng.normal(0, 2, n)).round()
    >>> pairs = pd.concat([pd.DataFrame({"site": site, "person_id": range(n),
    ...     "referral_id": range(n), "instrument": name, "baseline": b, "followup": f,
    ...     "change": f - b, "in_window": True}) for name, b, f in
    ...     (("swemwbs", base, follow), ("ucla3", np.where(lonely, 7.0, 4.0), 5.0))])
    >>> referrals = pd.DataFrame({"site": site, "referral_id": range(n), "age_band": "45-64",
    ...     "age_at_referral": 50, "sex": "female", "imd_decile": 5, "n_attended": 4})
    >>> cmocs = [{"id": "C1", "context": "lonely", "mechanism": "m", "outcome": "o",
    ...           "score": "swemwbs", "variable": "lonely_baseline", "condition": None,
    ...           "expected": "more_improvement"},
    ...          {"id": "C2", "context": "vcse host", "mechanism": "m", "outcome": "o",
    ...           "score": "swemwbs", "variable": "site:host",
    ...           "condition": ("equals", "vcse"), "expected": "more_improvement"}]
    >>> hosts = {s: {"host": "vcse" if s in "ACE" else "pcn"} for s in "ABCDEF"}
    >>> out = assess_programme_theory(cmocs, {"pairs": pairs, "referrals": referrals}, hosts)
    >>> out[["id", "level", "reading", "reading_holm"]]
       id   level       reading  reading_holm
    0  C1  person    consistent    consistent
    1  C2    site  inconclusive  inconclusive
    """
    rows = [
        assess_cmoc(c, tables, site_context, lonely_threshold, min_group, confidence, power)
        for c in cmocs
    ]
    out = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    p = out["p_value"].to_numpy(dtype=float)
    finite = np.isfinite(p)
    out["p_holm"] = np.nan
    if finite.any():
        out.loc[finite, "p_holm"] = multipletests(p[finite], method="holm")[1]
    alpha = 1 - confidence
    out["reading_holm"] = [_read_p(r, alpha, min_group) for r in out.itertuples(index=False)]
    out.attrs["caveat"] = CAVEAT
    return out


def _read_p(r, alpha: float, min_group: int) -> str:
    if (
        min(r.n_context, r.n_comparison) < min_group
        or not np.isfinite(r.p_holm)
        or r.p_holm >= alpha
    ):
        return "inconclusive"
    more = r.estimate > 0
    return "consistent" if more == (r.expected == "more_improvement") else "not consistent"
