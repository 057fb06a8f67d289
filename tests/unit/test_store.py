"""The processed store: lean parquet files, and pages that read only what they show."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from linkeval.cleaning import clean_study, write_outputs
from linkeval.errors import LinkevalError
from linkeval.io import (
    STORE_ORDER,
    InStoreOrder,
    ProcessedTables,
    _is_sorted,
    _store_order,
    current_version,
    sort_keys,
    store_order,
    write_parquet,
)
from linkeval.report.batch import notebooks_dir
from linkeval.schema import SCHEMAS, concat, plain
from tests.conftest import TEST_KEY, TODAY


def _random_table(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    people = pd.Series([f"{i:064x}" for i in rng.integers(0, 50, n)], dtype="str")
    people[rng.random(n) < 0.05] = None
    return pd.DataFrame(
        {
            "site": pd.Series(rng.choice(["C", "A", "B"], n), dtype="str").astype("category"),
            "person_id": people,
            "instrument": pd.Series(rng.choice(["ucla3", "ons4", "swemwbs"], n), dtype="str"),
            "score": pd.array(np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n))).astype(
                "Float64"
            ),
            "scored": pd.array(rng.choice([True, False, None], n), dtype="boolean"),
            "completed_date": pd.Timestamp("2025-01-01")
            + pd.to_timedelta(rng.integers(0, 400, n), "D"),
            "row": np.arange(n),
        }
    )


def test_a_table_reads_back_sorted_by_site_and_person_with_its_types(tmp_path):
    frame = _random_table(5_000)
    write_parquet(frame, tmp_path / "t.parquet")
    back = pd.read_parquet(tmp_path / "t.parquet")
    # The reference order: pandas' stable sort, missing values first, on the store's keys.
    expected = frame.astype({"site": "str"})
    keys = [k for k in STORE_ORDER if k in frame]
    expected = expected.sort_values(keys, kind="stable", na_position="first")
    pd.testing.assert_frame_equal(back, expected.reset_index(drop=True))
    assert back["site"].dtype == "str"  # a categorical is written as its values
    assert pq.ParquetFile(tmp_path / "t.parquet").metadata.row_group(0).column(0).compression == (
        "ZSTD"
    )


@pytest.mark.parametrize("drop", [[], ["instrument"]], ids=["sorted", "routine"])
def test_each_site_is_its_own_row_groups_so_a_site_filter_skips_the_others(
    tmp_path, monkeypatch, drop
):
    frame = _random_table(2_500).drop(columns=drop)
    if drop:  # a routine table: the cleaner writes site after site
        frame = frame.sort_values("site", kind="stable", ignore_index=True)
    monkeypatch.setattr("linkeval.io.ROW_GROUP", 400)  # and no group above the limit
    write_parquet(frame, tmp_path / "t.parquet")
    meta = pq.ParquetFile(tmp_path / "t.parquet").metadata
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    sites = [(g.column(0).statistics.min, g.column(0).statistics.max) for g in groups]
    counts = frame["site"].value_counts().sort_index()
    assert all(low == high for low, high in sites)  # no group holds two sites
    assert [s for s, _ in sites] == sorted(s for s, _ in sites)
    assert sum(g.num_rows for g in groups) == len(frame)
    assert max(g.num_rows for g in groups) <= 400
    for site, n in counts.items():  # each site in as few groups as the limit allows
        assert sum(s == site for s, _ in sites) == -(-n // 400)
    # Only the site's statistics are written: the other columns' would let no reader skip
    # a group, and cost a quarter of writing the responses.
    others = [g.column(i) for g in groups for i in range(1, g.num_columns)]
    assert others and all(c.statistics is None or not c.statistics.has_min_max for c in others)
    # A filtered read decodes the site's groups only (what ProcessedTables does).
    back = pd.read_parquet(tmp_path / "t.parquet", filters=[("site", "==", "B")])
    assert len(back) == counts["B"] and set(back["site"]) == {"B"}


def test_rows_the_cleaner_put_in_store_order_are_not_sorted_again(tmp_path):
    frame = _random_table(5000)
    ordered = store_order(frame)
    assert _store_order(frame) is not None
    assert _store_order(ordered) is None  # write_parquet then writes them as they are
    write_parquet(frame, tmp_path / "a.parquet")
    write_parquet(ordered, tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    )


def _site_parts(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """A table as the cleaner hands it over: a part per site, each with its own categories
    (here in a different order)."""
    parts = []
    for i, (_, part) in enumerate(frame.groupby("site", observed=True, sort=True)):
        part = part.astype({"site": "str", "person_id": "category"}).reset_index(drop=True)
        people = part["person_id"].cat.categories
        shuffled = people[np.random.default_rng(i).permutation(len(people))]
        parts.append(part.assign(person_id=part["person_id"].cat.set_categories(shuffled)))
    return parts


def test_parts_in_store_order_are_written_as_the_joined_table_is(tmp_path):
    parts = _site_parts(store_order(_random_table(5000)))
    people = [part["person_id"].cat.categories for part in parts]
    assert len(parts) == 3 and not people[0].equals(people[1])
    write_parquet(parts, tmp_path / "parts.parquet")
    write_parquet(concat(parts), tmp_path / "joined.parquet")  # as the cleaner joined them
    written, joined = (pq.ParquetFile(tmp_path / f"{n}.parquet") for n in ("parts", "joined"))
    pd.testing.assert_frame_equal(written.read().to_pandas(), joined.read().to_pandas())
    layout = [written.metadata.row_group(i).num_rows for i in range(written.num_row_groups)]
    assert layout == [len(part) for part in parts]  # a row group per site, as when joined
    assert layout == [joined.metadata.row_group(i).num_rows for i in range(joined.num_row_groups)]


@pytest.mark.parametrize(
    "disorder", ["within_a_part", "between_parts", "types_differ", "pandas_types_differ"]
)
def test_parts_not_in_store_order_are_joined_and_sorted(tmp_path, disorder):
    parts = _site_parts(store_order(_random_table(5000)))
    if disorder == "within_a_part":
        parts[1] = parts[1].iloc[::-1].reset_index(drop=True)
    elif disorder == "between_parts":
        parts = parts[::-1]
    elif disorder == "types_differ":
        parts[2] = parts[2].astype({"row": "float64"})
    else:  # the same in Arrow, not in pandas
        parts[2] = parts[2].astype({"row": "Int64", "scored": "boolean"})
        parts[2].loc[0, ["row", "scored"]] = pd.NA
    write_parquet(parts, tmp_path / "parts.parquet")
    write_parquet(concat(parts), tmp_path / "joined.parquet")
    back = pd.read_parquet(tmp_path / "parts.parquet")
    pd.testing.assert_frame_equal(back, pd.read_parquet(tmp_path / "joined.parquet"))
    assert _store_order(back) is None


def test_parts_said_to_be_in_store_order_are_checked_only_where_they_meet(tmp_path):
    parts = _site_parts(store_order(_random_table(5000)))
    write_parquet(concat(parts), tmp_path / "joined.parquet")
    joined = pd.read_parquet(tmp_path / "joined.parquet")
    write_parquet(InStoreOrder(parts), tmp_path / "parts.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "parts.parquet"), joined)
    # Where one part meets the next is still checked: out of order, they are sorted.
    write_parquet(InStoreOrder(parts[::-1]), tmp_path / "reversed.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "reversed.parquet"), joined)
    # Within a part, the rows are taken as they come (the cleaner checked them).
    parts[1] = parts[1].iloc[::-1].reset_index(drop=True)
    write_parquet(InStoreOrder(parts), tmp_path / "trusted.parquet")
    back = pd.read_parquet(tmp_path / "trusted.parquet")
    assert back["row"].tolist() == concat(parts)["row"].tolist()
    assert _store_order(back) is not None


def test_the_cleaners_questionnaire_tables_are_handed_over_in_store_order(demo_config):
    result = clean_study(demo_config, key=TEST_KEY, today=TODAY)
    for name in ("responses", "scores", "pairs"):
        parts = result.tables.parts(name)
        assert isinstance(parts, InStoreOrder) and len(parts) > 1
        assert all(_store_order(part) is None for part in parts)  # what the writer trusts
    assert not isinstance(result.tables.parts("referrals"), InStoreOrder)
    handed = result.tables.parts("responses")
    handed[0] = handed[0].iloc[::-1]  # a change to the list handed out...
    assert _store_order(result.tables.parts("responses")[0]) is None  # ...is not the table's
    result.tables.set_parts("scores", list(result.tables.parts("scores")))  # no longer said
    assert not isinstance(result.tables.parts("scores"), InStoreOrder)


def test_a_clean_that_only_writes_joins_no_item_level_table(demo_config, tmp_path):
    cfg = dataclasses.replace(demo_config, processed_dir=tmp_path / "processed")
    result = clean_study(cfg, key=TEST_KEY, today=TODAY)
    write_outputs(cfg, result)
    for name in ("responses", "scores"):
        assert len(result.tables.parts(name)) > 1  # still the sites' parts
        stored = pd.read_parquet(current_version(cfg.processed_dir) / f"{name}.parquet")
        pd.testing.assert_frame_equal(stored, plain(result.tables[name]))  # joined on asking
    assert len(result.tables.parts("responses")) == 1
    # A dict's ways still work: each joins.
    assert list(result.tables.copy()) == list(result.tables) == list(SCHEMAS)
    assert (result.tables | {"extra": None})["extra"] is None


@pytest.mark.parametrize(
    ("keys", "in_order"),
    [
        ([[1, 1, 2], [5, 6, 0]], True),  # a later key may fall where an earlier one rises
        ([[1, 1, 2], [6, 5, 0]], False),  # but not within a tie
        ([[1, 1, 1], [0, 0, 0], [2, 1, 3]], False),
        ([[2, 1]], False),
        ([[]], True),
    ],
)
def test_order_is_checked_key_by_key_within_ties(keys, in_order):
    assert _is_sorted([np.array(k, dtype=np.int64) for k in keys]) is in_order


def test_order_check_reads_no_key_once_no_rows_are_tied():
    def keys():
        yield np.array([1, 1, 2], dtype=np.int32)
        yield np.array([0, 5, 0], dtype=np.int32)  # breaks the only tie: in order
        raise AssertionError("a key was read after every row was told apart")

    assert _is_sorted(keys())


def test_a_row_group_stores_only_the_categories_its_rows_use(tmp_path):
    # Combining the sites unites their categories: a million pseudonyms in every site's
    # categorical. Each row group (a site) writes only its own in its dictionary page.
    many = pd.Index([f"{i:064x}" for i in range(100_000)], dtype="str")
    codes = np.repeat(np.arange(0, 100_000, 10_000), 3)  # ten people, three rows each
    frame = pd.DataFrame(
        {
            "site": pd.Categorical(["A"] * 15 + ["B"] * 15),
            "person_id": pd.Categorical.from_codes(codes, categories=many),
            "referral_id": pd.Categorical.from_codes(np.r_[codes[:-1], -1], categories=many),
            "instrument": "ons4",
            "score": pd.array(range(30), dtype="Int64"),
        }
    )
    write_parquet(frame, tmp_path / "t.parquet")
    assert (tmp_path / "t.parquet").stat().st_size < 20_000  # not 100,000 pseudonyms
    back = pd.read_parquet(tmp_path / "t.parquet")
    expected = frame.astype(
        dict.fromkeys(["site", "person_id", "referral_id", "instrument"], "str")
    )
    keys = ["site", "person_id", "referral_id"]  # the store's order, missing first
    expected = expected.sort_values(keys, kind="stable", na_position="first")
    pd.testing.assert_frame_equal(back, expected.reset_index(drop=True))
    assert pq.ParquetFile(tmp_path / "t.parquet").metadata.num_row_groups == 2


def test_an_all_missing_key_column_is_written(tmp_path):
    frame = pd.DataFrame(
        {"site": ["B", "A"], "referral_id": [None, None], "instrument": "ons4", "n": [1, 2]}
    )
    write_parquet(frame, tmp_path / "t.parquet")
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert back["n"].tolist() == [2, 1] and back["referral_id"].isna().all()


def test_a_routine_table_keeps_the_cleaners_order(tmp_path):
    frame = _random_table(100).drop(columns="instrument")
    write_parquet(frame, tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "t.parquet"), frame.astype({"site": "str"})
    )


@pytest.mark.parametrize(
    "site",
    [
        pd.Categorical([]),
        pd.Categorical([None, None], categories=pd.Index([], dtype="str")),
        pd.Series([], dtype=object),
        pd.Series([None, None], dtype=object),
    ],
    ids=["empty categorical", "all missing categorical", "empty objects", "all missing objects"],
)
def test_a_site_column_without_a_type_is_written(tmp_path, site):
    frame = pd.DataFrame({"site": site, "n": pd.array(range(len(site)), dtype="Int64")})
    for table in (frame, frame.assign(instrument="ons4")):  # kept in order, and sorted
        write_parquet(table, tmp_path / "t.parquet")
        back = pd.read_parquet(tmp_path / "t.parquet")
        assert back["n"].tolist() == frame["n"].tolist() and back["site"].isna().all()


def test_empty_and_one_row_tables_are_written(tmp_path):
    frame = _random_table(1)
    for rows in (frame.iloc[:0], frame):
        write_parquet(rows, tmp_path / "t.parquet")
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "t.parquet"),
            rows.astype({"site": "str"}).reset_index(drop=True),
            check_index_type=False,
        )


def test_the_processed_tables_are_the_clean_tables_sorted(demo_clean, demo_processed):
    folder = current_version(demo_processed)
    for name in SCHEMAS:
        stored = pd.read_parquet(folder / f"{name}.parquet")
        cleaned = plain(demo_clean.tables[name])  # item-level text is categorical in memory
        keys = [k for k in STORE_ORDER if k in cleaned]
        expected = (
            cleaned.sort_values(keys, kind="stable", na_position="first")
            if "instrument" in cleaned  # questionnaire tables; routine ones keep their order
            else cleaned
        )
        pd.testing.assert_frame_equal(stored, expected.reset_index(drop=True), check_dtype=True)


def test_item_responses_take_a_fraction_of_their_unsorted_size(
    demo_clean, demo_processed, tmp_path
):
    # The item-level table is most of the store: sorted by person and compressed with zstd
    # it is a fraction of the same rows unsorted with pandas' default writer (300,000
    # referrals: 317 MB -> 9 MB, benchmarks/bench_clean.py).
    responses = plain(demo_clean.tables["responses"]).sample(frac=1, random_state=1)
    responses.to_parquet(tmp_path / "plain.parquet", index=False)
    lean = (current_version(demo_processed) / "responses.parquet").stat().st_size
    assert lean * 2 < (tmp_path / "plain.parquet").stat().st_size


def _code_cells(notebook: str) -> list[str]:
    nb = json.loads((notebooks_dir() / notebook).read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("notebook", ["site_descriptive.ipynb", "site_change.ipynb"])
def test_a_site_page_reads_only_its_tables_and_its_site(demo_config, demo_processed, notebook):
    # Run the notebook's own cells in this process (its output goes nowhere).
    namespace: dict = {}
    for i, source in enumerate(_code_cells(notebook)):
        if i == 0:  # the parameters cell
            source = f"config = {str(demo_config.path)!r}\nsite = 'B'"
        exec(compile(source, notebook, "exec"), namespace)
    tables = namespace["report"].tables
    assert tables.site == "B"
    assert set(tables.read) <= {
        "referrals",
        "referral_reasons",
        "contacts",
        "onward_referrals",
        "pairs",
        "cleaning_log",
    }
    assert "responses" not in tables.read and "scores" not in tables.read
    assert all(set(tables[name]["site"]) <= {"B"} for name in tables.read)


def test_tables_come_from_the_version_current_when_the_page_opened(
    demo_config, demo_clean, tmp_path
):
    cfg = dataclasses.replace(demo_config, processed_dir=tmp_path / "processed")
    write_outputs(cfg, demo_clean)
    tables = ProcessedTables(cfg.processed_dir, site="A")
    first = tables["referrals"]
    write_outputs(cfg, demo_clean)  # a new clean replaces the version (and removes the old)
    assert tables["referrals"] is first  # a table already read stays as it was
    with pytest.raises(LinkevalError, match="replaced by a new clean"):
        tables["pairs"]
    assert ProcessedTables(cfg.processed_dir, site="A")["pairs"]["site"].eq("A").all()
    shutil.rmtree(cfg.processed_dir.resolve())


def _cross_site_page(path, monkeypatch, lean: bool = True) -> tuple[list[str], ProcessedTables]:
    """The cross-site notebook's cells run in this process: what they display, and the tables
    (``lean=False``: the whole tables)."""
    from linkeval.report import notebook

    shown: list[str] = []
    monkeypatch.setattr(notebook, "_display_html", shown.append)
    monkeypatch.setattr(notebook, "_display_markdown", shown.append)
    monkeypatch.setattr(notebook, "_display_checks", lambda rows: shown.append(repr(rows)))
    namespace: dict = {}
    for i, source in enumerate(_code_cells("cross_site.ipynb")):
        if i == 0:
            source = f"config = {str(path)!r}"
        elif not lean:
            source = source.replace("lean=True", "lean=False")
        exec(compile(source, "cross_site.ipynb", "exec"), namespace)
    return shown, namespace["report"].tables


def test_the_cross_site_page_reads_less_and_shows_the_same(
    demo_config, demo_processed, monkeypatch
):
    """The cross-site page leaves out the columns none of its sections uses and reads
    person_id as a categorical: every table, figure, sentence and output check it shows is the
    same as from the whole tables, with every kind of programme-theory context the config
    allows (a person's baseline band, a referral's column, a site attribute)."""
    config = yaml.safe_load(demo_config.path.read_text())
    contexts = [
        {"variable": "baseline_band:ucla3", "equals": "lonely", "label": "Lonely (UCLA-3)"},
        {"variable": "ethnicity", "equals": "white", "label": "White"},
        {"variable": "referral_source", "equals": "gp", "label": "From a GP"},
        {"variable": "days_to_first_contact", "at_most": 14, "label": "Seen within 2 weeks"},
    ]
    for i, context in enumerate(contexts):
        cmoc = dict(config["programme_theory"][0], id=f"CMO-extra-{i}")
        config["programme_theory"].append(cmoc | {"test": {**cmoc["test"], "context": context}})
    path = demo_config.path.with_name("lean_reading.yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))

    lean, tables = _cross_site_page(path, monkeypatch)
    assert "person_id" not in tables["referrals"]
    assert "baseline_date" not in tables["pairs"]
    assert isinstance(tables["pairs"]["person_id"].dtype, pd.CategoricalDtype)
    whole, tables = _cross_site_page(path, monkeypatch, lean=False)
    assert tables["pairs"]["person_id"].dtype == "str" and "person_id" in tables["referrals"]
    assert len(lean) == len(whole) > 20
    assert sum("CMO-extra" in text for text in lean) >= 1
    for mine, theirs in zip(lean, whole, strict=True):
        assert mine == theirs


def test_a_damaged_file_is_one_clear_error_when_columns_are_chosen(tmp_path):
    folder = tmp_path / "processed"
    folder.mkdir()
    for name in SCHEMAS:
        (folder / f"{name}.parquet").write_bytes(b"not parquet at all")
    tables = ProcessedTables(folder, unused={"pairs": ("baseline_date",)})
    with pytest.raises(LinkevalError, match="cannot read processed data"):
        tables["pairs"]


def test_durations_and_time_zones_keep_their_types(tmp_path):
    # The pandas metadata alone cannot give these back: such a table keeps an Arrow schema.
    frame = pd.DataFrame(
        {
            "site": pd.Categorical(["B", "A"]),
            "wait": pd.to_timedelta([3, 5], "D"),
            "at": pd.to_datetime(["2024-01-01", "2024-02-01"]).tz_localize("Europe/London"),
        }
    )
    write_parquet(frame, tmp_path / "t.parquet")
    back = pd.read_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back, frame.astype({"site": "str"}))


@pytest.mark.parametrize(
    "categories",
    [["p", "q", "r"], ["r", "p", "q"], ["p", "q", "r", "s"]],
    ids=["ascending", "unordered", "ascending-with-unused"],
)
def test_sort_keys_of_a_categorical_order_it_by_value_whatever_its_categories(categories):
    # Ascending categories are ranked by their codes, others by sorting them: the same keys.
    values = ["q", None, "r", "p", "q"]
    keys = sort_keys(pd.DataFrame({"person_id": pd.Categorical(values, categories)}), ["person_id"])
    text = sort_keys(pd.DataFrame({"person_id": values}), ["person_id"])
    assert np.argsort(keys[0], kind="stable").tolist() == [1, 3, 0, 4, 2]
    assert np.argsort(text[0], kind="stable").tolist() == [1, 3, 0, 4, 2]
