"""Studies of many sites (issue 15): the generator repeats the export shapes with sites of their
own, and the index and the cross-site sections stay readable at hundreds of sites."""

from __future__ import annotations

import csv
import hashlib
import zipfile
from pathlib import Path

import pytest

from linkeval.config import load_config
from linkeval.synthetic import generate_study
from linkeval.synthetic.study import DEMO_SIZES, site_code, study_sites
from linkeval.synthetic.styles import SITE_STYLES

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
