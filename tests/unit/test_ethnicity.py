"""Ethnicity: NHS 2001 (16+1) categories and 2021 census groups map to the five ONS 2021
high-level groups (docs/standard.md, 'Ethnicity')."""

from __future__ import annotations

import pandas as pd
import pytest

from linkeval.vocab import ETHNIC_CATEGORIES, SYNONYMS, map_labels, normalise_label

NHS_2001 = {  # NHS Data Dictionary ethnic category (2001 census) -> high-level group
    "A": "white",
    "B": "white",
    "C": "white",
    "D": "mixed",
    "E": "mixed",
    "F": "mixed",
    "G": "mixed",
    "H": "asian",
    "J": "asian",
    "K": "asian",
    "L": "asian",
    "M": "black",
    "N": "black",
    "P": "black",
    "R": "asian",
    "S": "other",
    "Z": "unknown",
    "99": "unknown",
}


def mapped(labels: list[str]) -> list[str]:
    codes, unmapped = map_labels(pd.Series(labels), "ethnicity")
    assert not unmapped.any(), [x for x, u in zip(labels, unmapped, strict=True) if u]
    return codes.tolist()


def test_every_nhs_2001_letter_maps_to_its_group():
    assert mapped(list(NHS_2001)) == list(NHS_2001.values())


def test_the_csv_lists_the_16_plus_1_categories_and_the_19_census_groups():
    cats = ETHNIC_CATEGORIES[ETHNIC_CATEGORIES["label"] != ""]
    nhs = cats[cats["scheme"] == "nhs_2001"]
    assert len(nhs[nhs["code"] != "99"]) == 17  # 16 categories + Z not stated
    assert dict(zip(nhs["code"], nhs["ethnicity"], strict=True)) == NHS_2001
    census = cats[cats["scheme"] == "census_2021"]
    assert len(census) == 19
    assert census.groupby("ethnicity").size().to_dict() == {
        "asian": 5,
        "black": 3,
        "mixed": 4,
        "white": 5,
        "other": 2,
    }


@pytest.mark.parametrize(
    ("label", "code"),
    [
        ("A - White - British", "white"),
        ("White - Any other White background", "white"),
        ("H - Indian", "asian"),
        ("Asian or Asian British - Bangladeshi", "asian"),
        ("Other Ethnic Groups - Chinese", "asian"),  # Chinese is Asian in the 2011 and 2021 census
        ("Other Ethnic Groups - Any other ethnic group", "other"),
        ("Chinese or Other Ethnic Group", "other"),  # 2001 six-group heading: cannot be split
        ("Mixed - White and Black Caribbean", "mixed"),
        ("Black or Black British - African", "black"),
        ("Z - Not stated", "unknown"),
        ("White: English, Welsh, Scottish, Northern Irish or British", "white"),
        ("White: Gypsy or Irish Traveller", "white"),
        ("Roma", "white"),
        ("Asian, Asian British or Asian Welsh: Chinese", "asian"),
        ("Other Asian", "asian"),
        ("Black, Black British, Black Welsh, Caribbean or African: Other Black", "black"),
        ("Mixed or Multiple ethnic groups: Other Mixed or Multiple ethnic groups", "mixed"),
        ("Other ethnic group: Arab", "other"),
        ("Black, Black British, Black Welsh, Caribbean or African", "black"),
        ("Indian or British Indian - ethnic category 2001 census (finding)", "asian"),
        ("White British - ethnic category 2001 census", "white"),
        ("Ethnic category not stated - 2001 census", "unknown"),
    ],
)
def test_labels_as_systems_write_them(label, code):
    assert mapped([label]) == [code]


def test_no_label_means_two_groups():
    seen: dict[str, str] = {}
    for code, labels in SYNONYMS["ethnicity"].items():
        for label in labels:
            norm = normalise_label(label)
            assert seen.setdefault(norm, code) == code, (label, seen[norm], code)


def test_a_site_override_still_wins():
    codes, unmapped = map_labels(pd.Series(["R", "Klingon"]), "ethnicity", {"R": "other"})
    assert codes.tolist() == ["other", "other"] and unmapped.tolist() == [False, True]
