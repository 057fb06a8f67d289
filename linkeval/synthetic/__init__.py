"""Synthetic link-worker exports for the demo, tests and benchmarks.

Seven fictional sites (A-G) export the same kind of routine data in the different shapes real
systems produce; a study of more sites repeats those shapes, each later site (S008, S009, ...)
with its own name, size and context. The people are made up: NHS numbers start with 9 (outside the ranges issued to patients
in England), names read "TEST PATIENT n" and postcodes use the ZZ99 pseudo-postcode area.
Defects are injected at documented rates and every one is recorded in the ground truth that
:func:`generate_study` returns (and writes to ``<raw>/truth/``), so the cleaner can be checked
row by row.

The modules, in the order a site is made:

- :mod:`~linkeval.synthetic.styles`: each site's export shape, headers and labels;
- :mod:`~linkeval.synthetic.population`: people, referrals, reasons, contacts, onward referrals;
- :mod:`~linkeval.synthetic.wellbeing`: questionnaire answers from a latent model with a known
  true change (:data:`TRUE_CHANGE`), and the demo programme theory (:data:`DEMO_CMOCS`);
- :mod:`~linkeval.synthetic.defects`: defects at the rates in :data:`DEFECT_RATES`;
- :mod:`~linkeval.synthetic.writers`: values and files in each site's shape;
- :mod:`~linkeval.synthetic.truth`: the expected fate of every row, expected scores and pairs;
- :mod:`~linkeval.synthetic.site` and :mod:`~linkeval.synthetic.study`: one site, the study.
"""

from linkeval.synthetic.defects import DEFECT_RATES
from linkeval.synthetic.study import SyntheticStudy, config_text, generate_study
from linkeval.synthetic.wellbeing import DEMO_CMOCS, TRUE_CHANGE

__all__ = [
    "DEFECT_RATES",
    "DEMO_CMOCS",
    "TRUE_CHANGE",
    "SyntheticStudy",
    "config_text",
    "generate_study",
]
