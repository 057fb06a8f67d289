"""Importing linkeval changes nothing in the analyst's session."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import warnings
import matplotlib
matplotlib.use("svg")  # a backend the analyst chose
# Third-party libraries set their own warning filters on import; import them first so that
# only linkeval's own effect is measured.
import pandas, numpy, scipy.stats, statsmodels.api, statsmodels.formula.api, seaborn, pyarrow
import matplotlib.pyplot as plt
import pandera, yaml, nbformat, mistune, IPython.display
before_filters = list(warnings.filters)
before_rc = dict(matplotlib.rcParams)
import linkeval
import linkeval.report.plots, linkeval.report.sections, linkeval.report.notebook
import linkeval.report.batch, linkeval.report.index, linkeval.cli
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert list(warnings.filters) == before_filters, "warning filters changed"
changed = {k for k, v in matplotlib.rcParams.items() if before_rc.get(k) != v}
assert not changed, changed
print("ok")
"""


def test_import_leaves_backend_warnings_and_style_alone():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_plots_draw_in_the_linkeval_look_without_keeping_it():
    import matplotlib
    import pandas as pd

    from linkeval.report import plots

    before = dict(matplotlib.rcParams)
    fig = plots.bar_chart(pd.DataFrame({"x": ["a", "b"], "pct": [60.0, 40.0]}), "x")
    assert fig.axes[0].spines["top"].get_visible() is False  # the theme applied inside
    assert {k for k, v in matplotlib.rcParams.items() if before.get(k) != v} == set()
