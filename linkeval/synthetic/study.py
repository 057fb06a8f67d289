"""A whole synthetic study: every site's raw exports, the study config that reads them, the truth."""

from __future__ import annotations

import csv
import functools
import json
import os
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from linkeval.synthetic.defects import DEFECT_RATES
from linkeval.synthetic.population import simulate_site
from linkeval.synthetic.site import render_site
from linkeval.synthetic.styles import QUESTIONNAIRE_STYLES, SITE_ORDER, SITE_STYLES, SiteStyle
from linkeval.synthetic.wellbeing import DEMO_CMOCS, FOLLOWUP_WINDOW, LOCAL_INSTRUMENTS
from linkeval.synthetic.writers import XLSX_MAX_ROWS

DEMO_SIZES = {"A": 420, "B": 650, "C": 180, "D": 300, "E": 260, "F": 540, "G": 340}
# The package's synthetic ZZ99 lookups (linkeval/data), named under context_lookups as
# linkeval:<file>: site G's postcodes and practices give imd, rural_urban and pcn_code.
DEMO_LOOKUPS = {
    "postcodes": "demo_lookup_postcodes.csv",
    "lsoa_2011_2021": "demo_lookup_lsoa_2011_2021.csv",
    "imd": "demo_lookup_imd2019.csv",
    "rural_urban": "demo_lookup_rural_urban_2021.csv",
    "practice_pcn": "demo_lookup_practice_pcn.csv",
}

# Sites after the seventh (docs/design.md, 'CLI': synth --sites): codes S008, S009, ... (zero-
# padded so that codes sort in site order), the export shapes A-G in turn, and a context, name
# and size each drawn from the site's own random stream ([seed, position, 1]), so a site is the
# same whatever the number of sites after it (except that more than 999 sites widen the codes).
# The mixes are those of English PCNs: most link workers employed by the PCN, about a third by
# a voluntary-sector (VCSE) partner; a quarter of PCNs rural; caseloads from affluent to very
# deprived (rural ones a little less deprived); two years' referrals 80-1,800 per site.
EXTRA_SITES = {
    "p_vcse": 0.35,
    "p_rural": 0.25,
    "deprivation": (0.12, 0.12, -0.2, 0.45),  # mean, SD, lowest, highest slope (styles.py)
    "rural_deprivation": -0.06,  # rural caseloads: the mean slope moves by this much
    "size": (380, 0.55, 80, 1800),  # median referrals, SD of log size, smallest, largest
}
NAME_FIRST = (
    "Ash", "Beech", "Birch", "Bram", "Castle", "Church", "Clay", "Cold", "Deer", "Elm",
    "Fair", "Fern", "Fox", "Glen", "Hay", "Hazel", "Heath", "High", "Hollin", "King",
    "Lark", "Long", "Marsh", "Mill", "Oak", "Orchard", "Pine", "Queen", "Red", "Rose",
    "Rye", "Salt", "Stone", "Summer", "Thorn", "Wren", "White", "Willow", "Wind", "Yew",
)  # fmt: skip
NAME_SECOND = (
    "bank", "bridge", "brook", "bury", "combe", "croft", "dale", "field", "ford", "gate",
    "ham", "hill", "holme", "hurst", "ley", "mead", "mere", "moor", "stead", "ton",
    "vale", "well", "wick", "wood", "worth",
)  # fmt: skip
# What a site calls itself, by who hosts its link workers (a G-shaped site is a GP practice).
NAME_KINDS = {
    "pcn": ("PCN", "PCN", "PCN", "Primary Care Network", "Health Partnership"),
    "vcse": ("Wellbeing Hub", "Community Connectors", "Social Prescribing Service"),
    "practice": ("Medical Group", "Medical Practice", "Surgery", "Health Centre"),
}


@dataclass
class SyntheticStudy:
    """What :func:`generate_study` wrote: the config path, the config and the ground truth."""

    config_path: Path
    config: dict[str, Any]
    truth: dict[str, pd.DataFrame]


def generate_study(
    out: str | Path,
    n_referrals: int | None = None,
    n_sites: int = len(SITE_STYLES),
    seed: int = 0,
    *,
    raw_dir: str | Path | None = None,
    config_path: str | Path | None = None,
    processed_dir: str | Path | None = None,
    reports_dir: str | Path | None = None,
    study: str = "Link worker evaluation (synthetic demo)",
) -> SyntheticStudy:
    """Write synthetic raw exports for ``n_sites`` sites plus a matching study config.

    By default everything goes under ``out``: ``raw/`` (with the ground truth in
    ``raw/truth/``) and ``study.yaml``, and the config points its processed and reports
    folders at ``out/processed`` and ``out/reports``.
    ``n_referrals`` (clean referrals in total) defaults to the demo sizes (150-700 per site;
    80-1,800 for sites after the seventh); otherwise it is split across sites in those
    proportions. Deterministic for a seed.

    Parameters
    ----------
    out : str or Path
        Folder the study is written under (created when missing).
    n_referrals : int, optional
        Referrals in total across the sites, before injected defects, at least one per site;
        None: the demo sizes (sites after the seventh: a size drawn for each, 80-1,800).
    n_sites : int, default 7
        Number of sites, 1 or more. The first seven are the site styles A-G (each exports in
        its own shape; G is a GP search of coded events); sites after them are coded S008,
        S009, ... (S0008, ... from 1,000 sites), export in the shapes A-G in turn, and each has
        its own name, size and context (host, rural), drawn from its own random stream
        (:func:`study_sites`).
    seed : int, default 0
        Seeds every random step; each site has its own stream, so a site's data does not
        depend on the sites before it.
    raw_dir, config_path, processed_dir, reports_dir : str or Path, optional
        Override the default locations (``out/raw``, ``out/study.yaml``, ``out/processed``,
        ``out/reports``); the config refers to them relative to its own folder.
    study : str, default "Link worker evaluation (synthetic demo)"
        The study title written to the config.

    Returns
    -------
    SyntheticStudy
        ``config_path`` (the study config written), ``config`` (the same config as a dict:
        ``study``, ``demo`` (True), folders, ``pseudonymisation``, ``followup_window_days``,
        ``disclosure``, ``programme_theory``, ``sites`` and, when used, ``instruments`` and
        ``context_lookups``) and ``truth`` (table name -> DataFrame: what a correct clean
        must produce, e.g. ``referrals``, ``scores``, ``pairs``, and every raw row's fate).

    Raises
    ------
    ValueError
        When ``n_sites`` is below 1, or ``n_referrals`` below ``n_sites``.

    Notes
    -----
    Defects (bad dates, invalid NHS numbers, unmapped labels, duplicates, ...) are injected at
    the documented rates of :data:`linkeval.synthetic.defects.DEFECT_RATES`, so cleaning
    keeps fewer rows than were written. The config has ``demo: true``, so cleaning may use the
    published demo key.

    References
    ----------
    docs/design.md, 'The flow' (Package layout, ``synthetic/``) and 'CLI' (``linkeval synth``).

    Examples
    --------
    >>> import os, shutil, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> study = generate_study(folder, n_referrals=200, n_sites=2, seed=1)
    >>> sorted(os.listdir(folder)), study.config_path.name, sorted(study.config["sites"])
    (['raw', 'study.yaml'], 'study.yaml', ['A', 'B'])
    >>> sorted(study.truth)[:4]
    ['contact_rows', 'contacts', 'onward_referrals', 'onward_rows']
    >>> again = generate_study(os.path.join(folder, "again"), n_referrals=200, n_sites=2, seed=1)
    >>> again.truth["referrals"].equals(study.truth["referrals"])
    True
    >>> shutil.rmtree(folder)
    """
    if n_sites < 1:
        raise ValueError(f"n_sites must be 1 or more (got {n_sites})")
    if n_referrals is not None and n_referrals < n_sites:
        raise ValueError(f"n_referrals ({n_referrals}) must be at least n_sites ({n_sites})")
    out = Path(out)
    raw_dir = Path(raw_dir) if raw_dir else out / "raw"
    config_path = Path(config_path) if config_path else out / "study.yaml"
    processed_dir = Path(processed_dir) if processed_dir else out / "processed"
    reports_dir = Path(reports_dir) if reports_dir else out / "reports"
    styles, sizes = study_sites(n_sites, seed, n_referrals)
    sites_cfg: dict[str, Any] = {}
    truth_parts: dict[str, list[pd.DataFrame]] = {}
    for i, (style, size) in enumerate(zip(styles, sizes, strict=True)):
        # One random stream per site, so a site's data does not depend on the sites before it.
        rng = np.random.default_rng([seed, i])
        core = simulate_site(rng, style, size, site_index=i)
        sites_cfg[style.code], truth = render_site(
            rng, style, core, raw_dir, large=size > XLSX_MAX_ROWS, site_index=i
        )
        for name, frame in truth.items():
            truth_parts.setdefault(name, []).append(frame)
    truth = {name: pd.concat(parts, ignore_index=True) for name, parts in truth_parts.items()}
    anchor = config_path.parent.resolve()
    config = {
        "study": study,
        "demo": True,
        "raw_dir": _relpath(raw_dir, anchor),
        "processed_dir": _relpath(processed_dir, anchor),
        "reports_dir": _relpath(reports_dir, anchor),
        "pseudonymisation": {"key_env": "LINKEVAL_KEY"},
        "followup_window_days": list(FOLLOWUP_WINDOW),
        "disclosure": {"rule": "nhs_digital"},
    }
    instruments = {
        name: definition
        for name, definition in LOCAL_INSTRUMENTS.items()
        if any(name in QUESTIONNAIRE_STYLES[s.export].item_headers for s in styles)
    }
    if instruments:
        config["instruments"] = instruments
    if any(s.coded_events for s in styles):
        config["context_lookups"] = {
            name: f"linkeval:{file}" for name, file in DEMO_LOOKUPS.items()
        }
    config.update({"programme_theory": DEMO_CMOCS, "sites": sites_cfg})
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(config_text(config), encoding="utf-8")
    _write_truth(truth, raw_dir / "truth")
    return SyntheticStudy(config_path=config_path, config=config, truth=truth)


def config_text(config: dict[str, Any]) -> str:
    """The YAML text of a synthetic study config, with a header saying what it is."""
    header = (
        "# Synthetic study written by linkeval (demo / synth): every person in it is made up.\n"
        "# demo: true -> the published demo key is used and reports carry a DEMO banner.\n"
        "# Regenerated by `linkeval demo`; copy study.example.yaml for a real study.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)


def _write_truth(truth: dict[str, pd.DataFrame], truth_dir: Path) -> None:
    """The ground truth as parquet files, with a README and the defect rates used."""
    truth_dir.mkdir(exist_ok=True)
    for name, frame in truth.items():
        frame.to_parquet(truth_dir / f"{name}.parquet", index=False)
    (truth_dir / "README.md").write_text(
        "Ground truth kept by the synthetic generator (linkeval.synthetic): the expected fate of\n"
        "every raw row and the clean values of every kept referral. For testing only.\n",
        encoding="utf-8",
    )
    (truth_dir / "defect_rates.json").write_text(json.dumps(DEFECT_RATES, indent=2))


def _relpath(path: Path, anchor: Path) -> str:
    """``path`` relative to ``anchor`` (the config's folder), with forward slashes."""
    return Path(os.path.relpath(Path(path).resolve(), anchor)).as_posix()


def study_sites(
    n_sites: int, seed: int = 0, n_referrals: int | None = None
) -> tuple[list[SiteStyle], list[int]]:
    """The study's sites in order, and the referrals each is given.

    The first seven are the demo's sites A-G (:data:`SITE_STYLES`) with the demo sizes; each
    later one (:func:`extra_site`) repeats an export shape with its own code, name, context and
    size. ``n_referrals`` (at least ``n_sites``) is split in proportion to those sizes, at
    least one referral a site, summing to ``n_referrals``.

    >>> styles, sizes = study_sites(9, seed=1, n_referrals=2000)
    >>> [s.code for s in styles], [s.export for s in styles][-2:], sum(sizes)
    (['A', 'B', 'C', 'D', 'E', 'F', 'G', 'S008', 'S009'], ['A', 'B'], 2000)
    """
    styles, weights = [], []
    for i in range(n_sites):
        if i < len(SITE_ORDER):
            styles.append(SITE_STYLES[SITE_ORDER[i]])
            weights.append(DEMO_SIZES[SITE_ORDER[i]])
        else:
            style, size = extra_site(i, n_sites, seed)
            styles.append(style)
            weights.append(size)
    return styles, _site_sizes(weights, n_referrals)


def site_code(i: int, n_sites: int) -> str:
    """The code of the study's site at position ``i`` (from 0): A-G, then S008, S009, ...

    Zero-padded to at least three digits (as many as ``n_sites`` has), so that codes sort in
    site order; valid under the config's rules (letters and digits, docs/design.md, 'Study
    config').

    >>> site_code(0, 9), site_code(7, 9), site_code(199, 200), site_code(7, 1200)
    ('A', 'S008', 'S200', 'S0008')
    """
    if i < len(SITE_ORDER):
        return SITE_ORDER[i]
    return f"S{i + 1:0{max(3, len(str(n_sites)))}d}"


def extra_site(i: int, n_sites: int, seed: int) -> tuple[SiteStyle, int]:
    """Site ``i`` (from 7) of a study of ``n_sites``: its style and its size before scaling.

    It exports in shape ``i mod 7`` (S008 like A, S009 like B, ...), keeping that shape's
    files, headers, labels, identifiers and questionnaire form; who hosts its link workers,
    whether it is rural, how deprived its caseload is, its re-referrals and size (and, for a
    G-shaped GP search, its PCN and practices in the demo lookup) come from its own random
    stream, so they are the same for a seed whatever the sites after it.
    """
    shape = SITE_STYLES[SITE_ORDER[i % len(SITE_ORDER)]]
    rng = np.random.default_rng([seed, i, 1])
    x = EXTRA_SITES
    rural = bool(rng.random() < x["p_rural"])
    host = "vcse" if rng.random() < x["p_vcse"] else "pcn"
    mean, sd, low, high = x["deprivation"]
    deprivation = np.clip(rng.normal(mean + rural * x["rural_deprivation"], sd), low, high)
    median, log_sd, smallest, largest = x["size"]
    size = int(np.clip(round(median * np.exp(rng.normal(0, log_sd))), smallest, largest))
    people_share = float(np.clip(shape.people_share + rng.normal(0, 0.02), 0.75, 0.97))
    kind = "practice" if shape.coded_events else host
    name = f"{_place_name(i, seed)} {NAME_KINDS[kind][rng.integers(len(NAME_KINDS[kind]))]}"
    extra: dict[str, Any] = {}
    if shape.coded_events:
        pcns = _demo_pcns()
        pcn = sorted(pcns)[rng.integers(len(pcns))]
        extra = {
            "pcn": pcn,
            "practices": pcns[pcn],
            "duplicate_cases": int(rng.integers(2, 7)),
        }
    style = replace(
        shape,
        code=site_code(i, n_sites),
        name=name,
        shape=shape.export,
        host=host,
        rural=rural,
        deprivation=round(float(deprivation), 2),
        people_share=round(people_share, 3),
        **extra,
    )
    return style, size


def _place_name(i: int, seed: int) -> str:
    """A made-up place name, different for each site of a study (numbered after 1,000)."""
    total = len(NAME_FIRST) * len(NAME_SECOND)  # 1,000
    k = i - len(SITE_ORDER)
    # 383 is coprime with 1,000, so k -> 383k + offset (mod 1,000) visits every name once.
    pos = (383 * k + seed * 389) % total
    first, second = NAME_FIRST[pos // len(NAME_SECOND)], NAME_SECOND[pos % len(NAME_SECOND)]
    lap = k // total
    return f"{first}{second}" + (f" {lap + 1}" if lap else "")


@functools.cache
def _demo_pcns() -> dict[str, tuple[str, ...]]:
    """PCN code -> its practices, from the demo's practice lookup (linkeval/data)."""
    path = resources.files("linkeval") / "data" / DEMO_LOOKUPS["practice_pcn"]
    pcns: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            pcns.setdefault(row["PCN Code"], []).append(row["Partner Organisation Code"])
    return {pcn: tuple(practices) for pcn, practices in pcns.items()}


def _site_sizes(weights: list[int], n_referrals: int | None) -> list[int]:
    """Referrals per site: the sizes themselves, or ``n_referrals`` split in their proportions
    (at least one each, summing to ``n_referrals``)."""
    if n_referrals is None:
        return list(weights)
    w = np.array(weights, dtype=float)
    sizes = np.floor(w / w.sum() * n_referrals).astype(int)
    sizes[0] += n_referrals - sizes.sum()  # the rounding remainder goes to the first site
    if len(w) <= len(SITE_ORDER) and (sizes >= 1).all():  # as the demo's sites always were
        return sizes.tolist()
    # More sites than the demo's, or few referrals: one each, the rest by largest remainder.
    share = w / w.sum() * (n_referrals - len(w))
    sizes = 1 + np.floor(share).astype(int)
    left = n_referrals - sizes.sum()
    sizes[np.argsort(-(share - np.floor(share)), kind="stable")[:left]] += 1
    return sizes.tolist()
