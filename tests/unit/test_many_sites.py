"""Studies of many sites (issue 15): the generator repeats the export shapes with sites of their
own, and the index and the cross-site sections stay readable at hundreds of sites."""

from __future__ import annotations

import csv
import hashlib
import re
import zipfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from linkeval.config import load_config
from linkeval.report import plots
from linkeval.report import sections as S
from linkeval.report.blocks import Figure, Table, table_html
from linkeval.report.disclosure import SUPPRESSED, Rule, as_numbers
from linkeval.report.index import JobResult, RunFacts, index_page
from linkeval.synthetic import config_text, generate_study
from linkeval.synthetic.study import DEMO_SIZES, site_code, study_sites
from linkeval.synthetic.styles import SITE_STYLES
from tests.unit.test_sections import check_counts_and_percentages, released_tables

LOOKUPS = Path(__file__).resolve().parents[2] / "linkeval" / "data"


def _files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> SHA-256); workbooks by their cells'
    parts only, since openpyxl stamps the time it wrote them."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as z:
                data = b"".join(z.read(n) for n in sorted(z.namelist()) if "docProps" not in n)
        else:
            data = path.read_bytes()
        out[path.relative_to(folder).as_posix()] = hashlib.sha256(data).hexdigest()
    return out


@pytest.fixture(scope="module")
def fifteen(tmp_path_factory):
    """Fifteen sites (each shape twice, A once more), 600 referrals."""
    out = tmp_path_factory.mktemp("fifteen")
    return generate_study(out, n_referrals=600, n_sites=15, seed=4)


def test_codes_are_unique_sortable_and_valid_in_a_config(fifteen):
    codes = list(fifteen.config["sites"])
    assert codes == [*"ABCDEFG", *(f"S{i:03d}" for i in range(8, 16))]
    assert sorted(codes) == codes
    cfg = load_config(fifteen.config_path)  # the config's site-code rules accept them
    assert list(cfg.sites) == codes
    names = [site["name"] for site in fifteen.config["sites"].values()]
    assert len(set(names)) == len(names)
    assert [site_code(i, 200) for i in (0, 6, 7, 199)] == ["A", "G", "S008", "S200"]
    assert sorted(site_code(i, 1200) for i in range(1200)) == [
        site_code(i, 1200) for i in range(1200)
    ]


def test_each_site_writes_files_of_its_own(fifteen):
    raw = fifteen.config_path.parent / "raw"
    owner: dict[str, str] = {}
    for code, site in fifteen.config["sites"].items():
        for source in site["sources"]:
            folder = source["path"].split("/")[0]
            assert folder == f"site_{code.lower()}"
            for path in raw.glob(source["path"]):
                assert owner.setdefault(path.as_posix(), code) == code
    assert len({p.split("/site_")[1].split("/")[0] for p in owner}) == 15


def test_later_sites_repeat_the_export_shapes(fifteen):
    sites = fifteen.config["sites"]
    for later, shape in (("S008", "A"), ("S013", "F"), ("S014", "G"), ("S015", "A")):
        ours = [
            (s["table"], s["path"].split("/", 1)[1], s["columns"]) for s in sites[later]["sources"]
        ]
        theirs = [
            (s["table"], s["path"].split("/", 1)[1], s["columns"]) for s in sites[shape]["sources"]
        ]
        assert ours == theirs, later
    referrals = fifteen.truth["referrals"]
    assert referrals.loc[referrals["site"] == "S008", "referral_id"].str.match(r"S008R\d{6}$").all()


def test_a_repeated_gp_search_uses_the_shipped_lookups(fifteen):
    with (LOOKUPS / "demo_lookup_practice_pcn.csv").open() as fh:
        practice_pcn = {r["Partner Organisation Code"]: r["PCN Code"] for r in csv.DictReader(fh)}
    with (LOOKUPS / "demo_lookup_postcodes.csv").open() as fh:
        postcodes = {r["pcds"] for r in csv.DictReader(fh)}
    raw = fifteen.config_path.parent / "raw"
    with (raw / "site_s014" / "sp_search.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    practices = {r["Practice Code"] for r in rows}
    assert practices <= set(practice_pcn)
    assert len({practice_pcn[p] for p in practices}) == 1  # one PCN's practices
    assert {r["Postcode"] for r in rows if r["Postcode"]} <= postcodes
    truth = fifteen.truth["referrals"]
    assert set(truth.loc[truth["site"] == "S014", "pcn_code"]) == {practice_pcn[practices.pop()]}
    assert "context_lookups" in fifteen.config


def test_contexts_and_sizes_vary_like_real_networks():
    styles, sizes = study_sites(200, seed=1, n_referrals=200_000)
    assert sum(sizes) == 200_000 and min(sizes) >= 1
    later = styles[7:]
    assert 0.2 < sum(s.host == "vcse" for s in later) / len(later) < 0.5
    assert 0.1 < sum(s.rural for s in later) / len(later) < 0.4
    assert len({s.deprivation for s in later}) > 20
    assert max(sizes) > 3 * min(sizes[7:])
    assert [s.export for s in styles[:16]] == [*"ABCDEFG", *"ABCDEFG", "A", "B"]
    # A site does not depend on the sites after it; the first seven are the demo's.
    nine, nine_sizes = study_sites(9, seed=1)
    assert nine == styles[:9] and nine_sizes[:7] == list(DEMO_SIZES.values())
    assert nine[:7] == list(SITE_STYLES.values())
    # Few referrals: one each, the rest by size, adding up.
    assert sum(study_sites(40, seed=2, n_referrals=45)[1]) == 45
    assert min(study_sites(40, seed=2, n_referrals=40)[1]) == 1


def test_sizes_add_up_and_a_seed_gives_the_same_files(tmp_path):
    a = generate_study(tmp_path / "a", n_referrals=450, n_sites=9, seed=3)
    b = generate_study(tmp_path / "b", n_referrals=450, n_sites=9, seed=3)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert a.truth["referrals"].equals(b.truth["referrals"])
    styles, sizes = study_sites(9, seed=3, n_referrals=450)
    assert sum(sizes) == 450
    # Every referral is written once, plus injected copies: each site got its share (the
    # GP search, G, writes events instead).
    rows = a.truth["referral_rows"]
    made = rows[rows["expected_rule"].fillna("") != "duplicate_row"].groupby("site").size()
    want = {s.code: n for s, n in zip(styles, sizes, strict=True) if not s.coded_events}
    assert made.to_dict() == want
    other = generate_study(tmp_path / "c", n_referrals=450, n_sites=9, seed=4)
    assert not other.truth["referrals"].equals(a.truth["referrals"])


def test_bad_numbers_of_sites_or_referrals_are_refused(tmp_path):
    with pytest.raises(ValueError, match="n_sites"):
        generate_study(tmp_path, n_sites=0)
    with pytest.raises(ValueError, match="at least n_sites"):
        generate_study(tmp_path, n_referrals=5, n_sites=9)


# -- the index at 200 sites ------------------------------------------------------------------


def _study_config(tmp_path: Path, n_sites: int):
    """A config of ``n_sites`` sites with the generator's names and contexts (no data)."""
    styles, _ = study_sites(n_sites, seed=1)
    sites = {
        s.code: {
            "name": s.name,
            "context": {"host": s.host, "rural": s.rural},
            "sources": [
                {
                    "table": "referrals",
                    "path": f"site_{s.code.lower()}/referrals.csv",
                    "columns": {"referral_id": "Ref", "nhs_number": "NHS", "referral_date": "Date"},
                }
            ],
        }
        for s in styles
    }
    path = tmp_path / "study.yaml"
    path.write_text(config_text({"study": "Many sites", "demo": True, "sites": sites}))
    return load_config(path)


def _fake_results(cfg, failed=()) -> list[JobResult]:
    out = [JobResult("cross_site", None, True, 1.0, "", "cross_site/cross_site.html")]
    for code in cfg.sites:
        for nb in ("site_descriptive", "site_change"):
            ok = not (code in failed and nb == "site_change")
            page = f"sites/{code}/{nb}.html" if ok else ""
            out.append(JobResult(nb, code, ok, 1.0, "" if ok else "cell 4: Boom", page))
    return out


def _fake_figures(cfg) -> pd.DataFrame:
    """Key figures as headline_figures releases them: counts rounded to 5 or *, changes."""
    rng = np.random.default_rng(0)
    rows = []
    for k, code in enumerate([*cfg.sites, "all"]):
        referred = int(rng.integers(20, 400)) * 5
        hidden = k % 9 == 4
        rows.append(
            {
                "site": code,
                "referred": referred,
                "engaged": referred // 10 * 5,
                "paired follow-up": "*" if hidden else 40,
                "n_change": "*" if hidden else 40,
                "mean_change": "*" if hidden else round(float(rng.normal(1.5, 0.5)), 2),
                "ci_low": "*" if hidden else 0.5,
                "ci_high": "*" if hidden else 2.5,
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def big_index(tmp_path_factory):
    cfg = _study_config(tmp_path_factory.mktemp("index200"), 200)
    failed = list(cfg.sites)[::9]  # 23 sites with a page that failed
    facts = RunFacts(period="January 2023 to December 2024", extracted="1 December 2026")
    return cfg, failed, index_page(cfg, _fake_results(cfg, failed), facts, _fake_figures(cfg))


def test_the_index_groups_200_sites_by_context(big_index):
    cfg, _, page = big_index
    table = re.search(r'<table class="le-table le-long" id="le-sites">.*?</table>', page, re.S)
    bodies = re.findall(r"<tbody>(.*?)</tbody>", table.group(0), re.S)
    heads = [
        re.search(r"<tr class='le-group'><th colspan='8'[^>]*>([^<]*)</th>", b) for b in bodies
    ]
    labels = [h.group(1) for h in heads]
    assert labels == sorted(labels) and len(labels) == 4  # host x rural
    assert sum(int(re.search(r"\((\d+) sites?\)", x).group(1)) for x in labels) == 200
    ids = re.findall(r"<tr id='site-([^']+)'", table.group(0))
    assert sorted(ids) == sorted(cfg.sites)  # every site once, in its group
    for body, label in zip(bodies, labels, strict=True):
        group = label.rsplit(" (", 1)[0]
        assert all(g == group for g in re.findall(r"data-g0='([^']*)'", body))
    options = re.findall(r"<option value='(g?\d?)'[^>]*>([^<]*)</option>", page)
    assert [name for _, name in options] == ["No grouping", "Context", "Host", "Rural"]
    assert "<option value='g0' selected>" in page
    # With scripts off the whole table reads as it is; folding is the script's, on screen only.
    assert re.search(r'<div id="le-filter"[^>]*\bhidden\b', page)
    assert "@media screen{#le-sites tr.le-folded{display:none}}" in page
    assert "le-folded" not in table.group(0)
    assert re.findall(r"<script\b([^>]*)>", page) == [""]


def test_the_index_summary_stays_short_at_200_sites(big_index):
    cfg, failed, page = big_index
    summary = re.search(r'<section class="le-summary".*?</section>', page, re.S).group(0)
    assert "All 200 sites" in summary
    assert f"{len(failed)} sites with a page that could not be made" in summary
    assert len(re.findall(r"href='#site-", summary)) == 10  # the first ten named, linked
    assert f"and {len(failed) - 10} more, marked Failed in the site table" in summary
    assert "Sites by context: PCN-hosted, rural" in summary
    assert len(re.sub(r"<[^>]+>", "", summary)) < 1500


def test_the_index_numbers_at_200_sites_are_the_released_ones(big_index):
    _, _, page = big_index
    table = re.search(r'id="le-sites">.*?</table>', page, re.S).group(0)
    cells = re.findall(r"<td class='num' data-sort='([^']*)'>([^<]*)</td>", table)
    assert len(cells) == 200 * 4
    for key, shown in cells:
        if shown == "*":
            assert key == "0.5"
        elif "(" not in shown:
            assert int(shown.replace(",", "")) % 5 == 0
            assert float(key) == float(shown.replace(",", ""))


def test_a_small_study_keeps_one_plain_table(tmp_path):
    cfg = _study_config(tmp_path, 9)
    facts = RunFacts(period="January 2023 to December 2024", extracted="1 December 2026")
    page = index_page(cfg, _fake_results(cfg), facts, _fake_figures(cfg))
    table = re.search(r'<table class="le-table" id="le-sites">.*?</table>', page, re.S).group(0)
    assert table.count("<tbody>") == 1 and "le-group'" not in table
    assert len(re.findall(r"<tr id='site-", table)) == 9
    assert "<option value='' selected>No grouping</option>" in page  # grouping on request
    assert "Sites by context" not in page


# -- the cross-site sections at 60 sites ----------------------------------------------------


@pytest.fixture(scope="module")
def sixty():
    """Sixty sites' referrals and SWEMWBS pairs (10-60 pairs a site), names and contexts."""
    styles, _ = study_sites(60, seed=1)
    rng = np.random.default_rng(3)
    refs, pairs = [], []
    for s in styles:
        k = int(rng.integers(10, 60))
        effect = rng.normal(2.0, 0.8)
        base = rng.normal(20, 4, k)
        ids = [f"{s.code}-{j}" for j in range(k + 10)]
        refs.append(
            pd.DataFrame(
                {
                    "site": s.code,
                    "referral_id": ids,
                    "person_id": ids,
                    "outcome": rng.choice(["completed", "ongoing", "declined", "other"], k + 10),
                    "n_contacts": rng.integers(0, 6, k + 10),
                    "n_attended": rng.integers(0, 4, k + 10),
                    "n_onward_referrals": rng.integers(0, 3, k + 10),
                }
            )
        )
        pairs.append(
            pd.DataFrame(
                {
                    "site": s.code,
                    "person_id": ids[:k],
                    "referral_id": ids[:k],
                    "instrument": "swemwbs",
                    "baseline": base,
                    "followup": base + effect + rng.normal(0, 3, k),
                    "in_window": True,
                }
            )
        )
    t = {"referrals": pd.concat(refs, ignore_index=True), "pairs": pd.concat(pairs)}
    t["pairs"]["change"] = t["pairs"]["followup"] - t["pairs"]["baseline"]
    names = {s.code: f"{s.name} ({s.code})" for s in styles}
    context = {s.code: {"host": s.host, "rural": s.rural} for s in styles}
    return t, names, context


def _figures(section) -> list:
    return [b.figure for b in section.blocks if isinstance(b, Figure)]


@pytest.mark.parametrize("rule", [Rule(), Rule("threshold", 10)], ids=lambda r: r.name)
def test_change_by_site_at_60_sites_is_grouped_and_split(sixty, rule):
    t, names, context = sixty
    section = S.change_by_site(t, rule, "swemwbs", names, context=context)
    figures = _figures(section)
    assert len(figures) >= 3
    limits = {fig.axes[0].get_xlim() for fig in figures}
    assert len(limits) == 1  # one scale for the set
    for fig in figures:
        ax = fig.axes[0]
        ticks = [x.get_text() for x in ax.get_yticklabels()]
        assert len(ticks) <= plots.FOREST_MAX_ROWS
        assert "All sites (pooled)" in ticks  # the diamond in every figure
        assert "Prediction interval for a new site" in [x.get_text() for x in ax.get_legend().texts]
        bold = [x.get_text() for x in ax.get_yticklabels() if x.get_fontweight() == "bold"]
        assert bold and all(
            b.endswith(("rural", "urban", "urban (cont.)", "rural (cont.)")) for b in bold
        )
        assert fig.get_size_inches()[1] <= 9
    for frame in released_tables(section):
        check_counts_and_percentages(frame, rule)
    # Three sites too small to show: left out of the figures, last in their group's rows, and
    # (as the rule says) no pooled change, since it would rest on them too.
    pairs = t["pairs"]
    small = pairs.groupby("site").cumcount() < 4
    few = pairs[~pairs["site"].isin(["S010", "S020", "S030"]) | small]
    section = S.change_by_site({**t, "pairs": few}, rule, "swemwbs", names, context=context)
    table = next(b for b in section.blocks if isinstance(b, Table)).frame
    sites = table[table["site"].notna()]
    assert list(sites["group"]) == sorted(sites["group"])  # grouped
    for _, part in sites.groupby("group"):
        change = as_numbers(part["mean_change"])
        shown = change[change.notna()]
        assert list(shown) == sorted(shown, reverse=True)  # by change within a group
        assert change.notna().cummin().eq(change.notna()).all()  # hidden ones last
        assert (as_numbers(part.loc[change.notna(), "n"]) >= rule.minimum).all()
    assert sorted(sites.loc[sites["mean_change"] == "*", "site"]) == ["S010", "S020", "S030"]
    assert (table.loc[table["site"].isna(), "mean_change"] == "*").all()
    ticks = [x.get_text() for f in _figures(section) for x in f.axes[0].get_yticklabels()]
    assert "All sites (pooled)" not in ticks and not any("(S010)" in x for x in ticks)
    notes = " ".join(x.get_text() for f in _figures(section) for x in f.texts)
    assert "Not shown (small numbers, *): 3 sites" in notes
    for frame in released_tables(section):
        check_counts_and_percentages(frame, rule)
    plt.close("all")


def test_change_by_site_without_context_orders_many_sites_by_change(sixty):
    t, names, _ = sixty
    section = S.change_by_site(t, Rule(), "swemwbs", names)
    table = next(b for b in section.blocks if isinstance(b, Table)).frame
    change = as_numbers(table.loc[table["site"].notna(), "mean_change"]).dropna()
    assert list(change) == sorted(change, reverse=True)
    assert "group" not in table
    assert len(_figures(section)) >= 3
    plt.close("all")


@pytest.mark.parametrize("rule", [Rule(), Rule("threshold", 10)], ids=lambda r: r.name)
def test_site_tables_at_60_sites_are_compact_and_controlled(sixty, rule):
    t, names, context = sixty
    side = S.sites_side_by_side(t, rule, names, context=context)
    table = next(b for b in side.blocks if isinstance(b, Table))
    assert table.group == "group" and list(table.columns)[:2] == ["group", "site"]
    assert list(table.frame["group"]) == sorted(table.frame["group"]) and len(table.frame) == 60
    outcomes = S.outcomes_by_site(t, rule, names, context=context)
    wide = next(b for b in outcomes.blocks if isinstance(b, Table))
    assert len(wide.frame) == 60  # one row a site, not one per site and outcome
    assert {"Referrals", "Completed %", "Declined %"} <= set(wide.columns.values())
    assert wide.frame.attrs["kinds"]["denominator"] == "count"
    for section in (side, outcomes):
        for frame in released_tables(section):
            check_counts_and_percentages(frame, rule)
    html = table_html(wide)
    assert html.count("<tr>") == 61 and 'data-kind="pct"' in html


def test_forest_plots_grow_with_their_rows_up_to_a_cap():
    heights = []
    for n in (5, 12, 18, 25):
        table = pd.DataFrame(
            {
                "site": [f"Site {i}" for i in range(n)],
                "estimate": np.linspace(-1, 2, n),
                "ci_low": np.linspace(-2, 1, n),
                "ci_high": np.linspace(0, 3, n),
            }
        )
        fig = plots.forest_plot(table, "site")
        heights.append(fig.get_size_inches()[1])
        plt.close(fig)
    assert heights == sorted(heights) and heights[-1] <= 8.5
    assert plots.forest_size(25)[1] >= 8  # labels stay legible


@pytest.mark.parametrize("rule", [Rule(), Rule("threshold", 10)], ids=lambda r: r.name)
def test_every_score_pooled_in_one_table_at_many_sites(sixty, rule):
    t, _, _ = sixty
    pairs = t["pairs"]
    # A second score, and a third that one site's few pairs keep from being pooled.
    noise = np.random.default_rng(5).normal(0, 1, len(pairs))
    ucla = pairs.assign(instrument="ucla3", followup=pairs["baseline"] - 1.0 + noise)
    ucla["change"] = ucla["followup"] - ucla["baseline"]
    ucla = ucla.groupby("site").head(12)  # 12 pairs a site: a pooled row under both rules
    tiny = pairs.assign(instrument="ons4_happy").groupby("site").head(3)
    both = {**t, "pairs": pd.concat([pairs, ucla, tiny], ignore_index=True)}
    section = S.pooled_changes(both, rule, ["swemwbs", "ucla3", "ons4_happy"])
    table = next(b for b in section.blocks if isinstance(b, Table))
    titles = {n: S.score_title(n) for n in ("swemwbs", "ucla3", "ons4_happy")}
    rows = table.frame.set_index("score")
    assert list(rows.index) == list(titles.values())
    assert rows.loc[titles["swemwbs"], "sites"] == 60
    assert float(rows.loc[titles["ucla3"], "mean_change"]) == pytest.approx(-1.0, abs=0.3)
    # 3 pairs a site fail every rule: the pooled row is there, its numbers hidden.
    assert rows.loc[titles["ons4_happy"], "mean_change"] == SUPPRESSED
    for frame in released_tables(section):
        check_counts_and_percentages(frame, rule)
