"""Steering-group reports: the disclosure gate, figures, report sections, HTML, batch runs."""
