"""Rendering: numbers formatted for people, the pages' look, and executed notebooks as HTML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def fmt(value, decimals: int = 1) -> str:
    """A number for people: '*' stays '*', thousands separated, sensible decimals."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)) or (float(value).is_integer() and decimals == 0):
        return f"{int(value):,}"
    return f"{float(value):,.{decimals}f}"


def fmt_p(p) -> str:
    if isinstance(p, str) or p is None or (isinstance(p, float) and np.isnan(p)):
        return fmt(p)
    return "<0.001" if p < 0.001 else f"{p:.3f}"


STYLE = """<style>
.le-demo{background:#b00020;color:#fff;font-weight:700;padding:.6em 1em;border-radius:4px;
 margin-bottom:.8em;letter-spacing:.03em}
.le-header{border-bottom:2px solid #0072B2;margin-bottom:1em;padding-bottom:.6em}
.le-study{color:#555;font-size:.95em}
.le-header h1{margin:.2em 0 .4em 0;font-size:1.7em}
.le-meta span{display:inline-block;margin-right:1.2em;font-size:.85em;color:#333}
.le-rule{font-size:.8em;color:#555;margin-top:.5em;max-width:60em}
table.le-table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
table.le-table th{background:#eef3f8;text-align:left!important;padding:.3em .7em;
 border-bottom:1px solid #99a}
table.le-table td{padding:.25em .7em;border-bottom:1px solid #dde;vertical-align:top}
table.le-table td.num{text-align:right!important;white-space:nowrap}
table.le-table td.txt{text-align:left!important}
table.le-table caption{text-align:left;font-weight:600;padding-bottom:.3em}
.le-note{font-size:.8em;color:#555;margin-bottom:1em}
img.le-figure{max-width:100%;height:auto;display:block;margin:.4em 0}
@media print{.le-demo{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 .jp-Cell{break-inside:avoid}}
</style>"""


def render_html(executed: Path, title: str) -> str:
    """An executed notebook as one self-contained page for the steering group.

    Code cells' inputs, the parameters and injected-parameters cells, stderr streams,
    execution counts and papermill metadata are removed; figures are embedded.
    """
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(executed, as_version=4)
    hidden = {"parameters", "injected-parameters"}
    nb.cells = [c for c in nb.cells if not hidden & set(c.metadata.get("tags", []))]
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs
                            if not (o.output_type == "stream" and o.get("name") == "stderr")
                            and o.output_type != "error"]
            cell.execution_count = None
    nb.metadata.pop("papermill", None)
    nb.metadata["title"] = title
    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    return body
