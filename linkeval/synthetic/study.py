"""A whole synthetic study: every site's raw exports, the study config that reads them, the truth."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from linkeval.synthetic.defects import DEFECT_RATES
from linkeval.synthetic.population import simulate_site
from linkeval.synthetic.site import render_site
from linkeval.synthetic.styles import QUESTIONNAIRE_STYLES, SITE_STYLES
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
    ``n_referrals`` (clean referrals in total) defaults to the demo sizes (150-700 per site);
    otherwise it is split across sites in the demo proportions. Deterministic for a seed.

    Parameters
    ----------
    out : str or Path
        Folder the study is written under (created when missing).
    n_referrals : int, optional
        Referrals in total across the sites, before injected defects; None: the demo sizes.
    n_sites : int, default 7
        Number of sites, 1-7: the first ``n_sites`` of the site styles A-G (each exports in
        its own shape; G is a GP search of coded events).
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
        When ``n_sites`` is not 1-7.

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
    if not 1 <= n_sites <= len(SITE_STYLES):
        raise ValueError(f"n_sites must be 1-{len(SITE_STYLES)}")
    out = Path(out)
    raw_dir = Path(raw_dir) if raw_dir else out / "raw"
    config_path = Path(config_path) if config_path else out / "study.yaml"
    processed_dir = Path(processed_dir) if processed_dir else out / "processed"
    reports_dir = Path(reports_dir) if reports_dir else out / "reports"
    codes = list(SITE_STYLES)[:n_sites]
    sizes = _site_sizes(codes, n_referrals)
    sites_cfg: dict[str, Any] = {}
    truth_parts: dict[str, list[pd.DataFrame]] = {}
    for i, code in enumerate(codes):
        # One random stream per site, so a site's data does not depend on the sites before it.
        rng = np.random.default_rng([seed, i])
        style = SITE_STYLES[code]
        core = simulate_site(rng, style, sizes[code], site_index=i)
        sites_cfg[code], truth = render_site(
            rng, style, core, raw_dir, large=sizes[code] > XLSX_MAX_ROWS
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
        if any(name in QUESTIONNAIRE_STYLES[c].item_headers for c in codes)
    }
    if instruments:
        config["instruments"] = instruments
    if any(SITE_STYLES[c].coded_events for c in codes):
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


def _site_sizes(codes: list[str], n_referrals: int | None) -> dict[str, int]:
    """Referrals per site: the demo sizes, or ``n_referrals`` split in the demo proportions."""
    if n_referrals is None:
        return {c: DEMO_SIZES[c] for c in codes}
    weights = np.array([DEMO_SIZES[c] for c in codes], dtype=float)
    sizes = np.floor(weights / weights.sum() * n_referrals).astype(int)
    sizes[0] += n_referrals - sizes.sum()  # the rounding remainder goes to the first site
    return dict(zip(codes, np.maximum(sizes, 1).tolist(), strict=True))
