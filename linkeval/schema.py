"""Canonical tables (docs/design.md, 'Canonical tables') as pandera schemas.

The cleaner validates every table against these before anything is written, so a processed file
always has exactly these columns, types and codes. Strings are pandas ``str`` (the questionnaire
tables' are categoricals in memory: ``TEXT``), counts nullable ``Int64``, dates
``datetime64[ns]`` (day precision), booleans nullable ``boolean``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc

from linkeval.vocab import AGE_BANDS, VOCABULARIES

DATE = "datetime64[ns]"


def _code(vocabulary: str, nullable: bool = False) -> pa.Column:
    return pa.Column(str, pa.Check.isin(VOCABULARIES[vocabulary]), nullable=nullable)


def _count(nullable: bool = True) -> pa.Column:
    return pa.Column("Int64", pa.Check.ge(0), nullable=nullable)


_KEY = {"site": pa.Column(str), "referral_id": pa.Column(str, pa.Check.str_length(min_value=1))}

REFERRALS = pa.DataFrameSchema(
    {
        **_KEY,
        # 64 lowercase hex characters; length here, the alphabet in the tests (a regex over
        # a million IDs would double the validation time).
        "person_id": pa.Column(str, pa.Check.str_length(64, 64)),
        "referral_date": pa.Column(DATE),
        "referral_source": _code("referral_source"),
        "age_at_referral": pa.Column("Int64", pa.Check.in_range(0, 120), nullable=True),
        "age_band": pa.Column(str, pa.Check.isin([*AGE_BANDS, "<18"]), nullable=True),
        "sex": _code("sex"),
        "ethnicity": _code("ethnicity"),
        "imd_decile": pa.Column("Int64", pa.Check.in_range(1, 10), nullable=True),
        # Derived during cleaning (cleaning/area.py); the postcode itself is never kept.
        "imd_quintile": pa.Column("Int64", pa.Check.in_range(1, 5), nullable=True),
        "rural_urban": pa.Column(str, pa.Check.isin(["urban", "rural"]), nullable=True),
        "pcn_code": pa.Column(str, nullable=True),
        "first_contact_date": pa.Column(DATE, nullable=True),
        "discharge_date": pa.Column(DATE, nullable=True),
        "outcome": _code("outcome", nullable=True),
        "n_contacts": _count(),
        "n_attended": _count(),
        "days_to_first_contact": _count(),
        "n_onward_referrals": _count(),
    },
    unique=["site", "referral_id"],
    strict=True,
    ordered=True,
    coerce=True,
    name="referrals",
)

REFERRAL_REASONS = pa.DataFrameSchema(
    {**_KEY, "reason": _code("reason")},
    unique=["site", "referral_id", "reason"],
    strict=True,
    ordered=True,
    coerce=True,
    name="referral_reasons",
)

CONTACTS = pa.DataFrameSchema(
    {
        **_KEY,
        "contact_date": pa.Column(DATE),
        "mode": _code("mode", nullable=True),
        "duration_min": pa.Column("Float64", pa.Check.in_range(0, 24 * 60), nullable=True),
        "attended": pa.Column("boolean", nullable=True),
    },
    strict=True,
    ordered=True,
    coerce=True,
    name="contacts",
)

ONWARD_REFERRALS = pa.DataFrameSchema(
    {**_KEY, "onward_date": pa.Column(DATE), "asset_type": _code("asset_type")},
    strict=True,
    ordered=True,
    coerce=True,
    name="onward_referrals",
)

# The questionnaire tables (responses, scores, pairs) hold millions of rows whose text
# repeats (a person's pseudonym on every answer): in memory their text columns are pandas
# categoricals, with the same values as text; in parquet they are text (io.write_parquet).
TEXT = pd.CategoricalDtype()
DICTIONARY = pa_arrow.dictionary(pa_arrow.int32(), pa_arrow.large_string())  # TEXT in Arrow
_IS_TEXT = pa.Check(
    lambda s: (
        isinstance(s.dtype, pd.CategoricalDtype)
        and (s.dtype.categories.empty or pd.api.types.is_string_dtype(s.dtype.categories))
    ),
    element_wise=False,
    error="not a categorical of text (schema.TEXT)",
)


def _length(n: int) -> pa.Check:
    """Every value of a TEXT column is ``n`` characters long: measured once per category,
    not once per row (``pa.Check.str_length`` measures every row: 0.3 s for a site's
    responses at a million referrals)."""

    def check(values: pd.Series) -> pd.Series:
        lengths = np.append(values.cat.categories.str.len().to_numpy(), 0)  # missing: 0
        return pd.Series(lengths[values.cat.codes.to_numpy()] == n, index=values.index)

    return pa.Check(check, name="str_length", error=f"str_length({n}, {n})")


def _text(*checks: pa.Check, nullable: bool = False) -> pa.Column:
    """A TEXT column. Its type is checked (and coerced, by :func:`validate`) here, not by
    pandera, which copies every category of a categorical into a tuple to check its type:
    over a second a table at a million people."""
    return pa.Column(None, [_IS_TEXT, *checks], nullable=nullable)


_COMPLETION = {
    "site": _text(),
    "person_id": _text(_length(64)),
    "referral_id": _text(nullable=True),
    "timepoint": _text(pa.Check.isin(VOCABULARIES["timepoint"])),
    "completed_date": pa.Column(DATE),
    "instrument": _text(),
}

RESPONSES = pa.DataFrameSchema(
    {
        **_COMPLETION,
        "item": _text(),
        "value": pa.Column("Float64", nullable=True),
    },
    strict=True,
    ordered=True,
    coerce=True,
    name="responses",
)

SCORES = pa.DataFrameSchema(
    {
        **_COMPLETION,
        "score": pa.Column("Float64", nullable=True),
        "band": _text(nullable=True),
        "n_items": pa.Column("Int64", pa.Check.ge(1)),
        "n_missing": pa.Column("Int64", pa.Check.ge(0)),
        "scored": pa.Column(bool),
        "not_scored_reason": _text(nullable=True),
    },
    checks=pa.Check(
        lambda df: df["scored"] == df["score"].notna(),
        element_wise=False,
        error="a score is present exactly when scored is true",
    ),
    strict=True,
    ordered=True,
    coerce=True,
    name="scores",
)

PAIRS = pa.DataFrameSchema(
    {
        # Categoricals in memory, like the questionnaire tables they come from; text in parquet.
        "site": _text(),
        "person_id": _text(_length(64)),
        "referral_id": _text(nullable=True),
        "instrument": _text(),
        "baseline": pa.Column("Float64"),
        "followup": pa.Column("Float64", nullable=True),
        "change": pa.Column("Float64", nullable=True),
        "baseline_date": pa.Column(DATE),
        "followup_date": pa.Column(DATE, nullable=True),
        "days_between": pa.Column("Int64", pa.Check.ge(0), nullable=True),
        "in_window": pa.Column(bool),
        "improved_reliably": pa.Column("boolean", nullable=True),
        "deteriorated_reliably": pa.Column("boolean", nullable=True),
        "met_mid_improvement": pa.Column("boolean", nullable=True),
        "baseline_band": _text(nullable=True),
        "followup_band": _text(nullable=True),
    },
    # per_person pairing: one row per (site, person_id, instrument); per_episode: per referral
    unique=["site", "person_id", "referral_id", "instrument"],
    strict=True,
    ordered=True,
    coerce=True,
    name="pairs",
)

CLEANING_LOG = pa.DataFrameSchema(
    {
        "site": pa.Column(str),
        "table": pa.Column(str),
        "source_file": pa.Column(str),
        "source_row": pa.Column("Int64", pa.Check.ge(1)),
        "field": pa.Column(str, nullable=True),
        "rule": pa.Column(str),
        "action": pa.Column(str, pa.Check.isin(["rejected", "fixed", "flagged"])),
        "detail": pa.Column(str, nullable=True),
    },
    strict=True,
    ordered=True,
    coerce=True,
    name="cleaning_log",
)

SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "referrals": REFERRALS,
    "referral_reasons": REFERRAL_REASONS,
    "contacts": CONTACTS,
    "onward_referrals": ONWARD_REFERRALS,
    "responses": RESPONSES,
    "scores": SCORES,
    "pairs": PAIRS,
}


def empty(table: str) -> pd.DataFrame:
    """An empty, correctly typed canonical table."""
    schema = SCHEMAS.get(table, CLEANING_LOG)
    frame = pd.DataFrame(
        {name: pd.Series(dtype=_dtype(col)) for name, col in schema.columns.items()}
    )
    return frame


def _dtype(column: pa.Column) -> str:
    if _IS_TEXT in column.checks:
        return "category"
    return str(column.dtype) if column.dtype is not None else "object"


def _text_columns(schema: pa.DataFrameSchema) -> list[str]:
    return [name for name, column in schema.columns.items() if _IS_TEXT in column.checks]


def text_columns(table: str) -> list[str]:
    """The table's TEXT columns (pandas categoricals in memory).

    >>> text_columns("pairs")[:2], text_columns("referrals")
    (['site', 'person_id'], [])
    """
    return _text_columns(SCHEMAS[table])


def concat(frames: list[pd.DataFrame], table: str | None = None) -> pd.DataFrame:
    """Parts of one table, one below the other; categorical columns stay categorical (their
    categories united, in Arrow), where a plain ``pd.concat`` would turn them into text
    whenever the parts' categories differ. Without rows: the empty canonical ``table``
    (when named), else the first part.

    >>> a = pd.DataFrame({"site": pd.Categorical(["A"]), "n": [1]})
    >>> b = pd.DataFrame({"site": pd.Categorical(["B", "A"]), "n": [2, 3]})
    >>> both = concat([a, b], "responses")
    >>> both["site"].tolist(), both["n"].tolist(), both["site"].dtype.name
    (['A', 'B', 'A'], [1, 2, 3], 'category')
    """
    given, frames = frames, [f for f in frames if len(f)]
    if len(frames) < 2:
        if frames:
            return frames[0].reset_index(drop=True)
        if table:
            return empty(table)
        return given[0].reset_index(drop=True) if given else pd.DataFrame()
    columns = frames[0].columns
    # Categoricals with the same categories in every part (one site's completions, say)
    # pandas joins as they are; the others' categories are united here.
    categorical = [
        c
        for c in columns
        if all(isinstance(f[c].dtype, pd.CategoricalDtype) for f in frames)
        and any(f[c].dtype != frames[0][c].dtype for f in frames[1:])
    ]
    out = pd.concat([f.drop(columns=categorical) for f in frames], ignore_index=True)
    for name in categorical:
        united = (
            pa_arrow.chunked_array([pa_arrow.array(f[name]).cast(DICTIONARY) for f in frames])
            .unify_dictionaries()
            .combine_chunks()
        )
        out[name] = pd.Categorical.from_codes(
            pc.fill_null(united.indices, -1).to_numpy(),
            categories=pd.Index(united.dictionary.to_pandas()),
        )
    return out[columns]


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its categorical columns as text (``str``), for code that works on text.

    >>> plain(pd.DataFrame({"site": pd.Categorical(["A"])}))["site"].dtype
    <StringDtype(na_value=nan)>
    """
    categorical = [c for c, t in frame.dtypes.items() if isinstance(t, pd.CategoricalDtype)]
    return frame.astype(dict.fromkeys(categorical, "str")) if categorical else frame


def validate(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce and check one canonical table; lists every failure if the cleaner got it wrong."""
    schema = SCHEMAS.get(table, CLEANING_LOG)
    text = [
        c
        for c in _text_columns(schema)
        if c in frame and not isinstance(frame[c].dtype, pd.CategoricalDtype)
    ]
    # Coerced as pandera coerces the other columns. Pandera then coerces in place, in a
    # shallow copy (not in a copy of every column: 0.35 s for a site's responses at a
    # million referrals); the caller's frame is left as it is.
    frame = frame.astype(dict.fromkeys(text, "category")) if text else frame.copy(deep=False)
    return schema.validate(frame, lazy=True, inplace=True)


def validate_columns(table: str, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Coerce and check only ``columns`` of a table whose other columns were validated."""
    schema = SCHEMAS[table]
    part = pa.DataFrameSchema({c: schema.columns[c] for c in columns}, coerce=True)
    checked = part.validate(frame[columns], lazy=True, inplace=True)
    return frame.assign(**{c: checked[c] for c in columns})
