"""linkeval: cleaning, scoring and analysis for realist evaluations of social-prescribing link workers.

The pipeline, one subpackage a step::

    raw exports --cleaning--> processed tables --stats--> tidy results --report--> pages

A statistician writes ``import linkeval as le`` and uses the functions listed in
``__init__.pyi``; ``linkeval demo``
runs the whole pipeline on synthetic data. Importing linkeval changes no global state (no
matplotlib backend, theme or warning filter is set), and imports nothing heavy: each of those names
is imported the first time it is used (lazy_loader, from the list in ``__init__.pyi``), so a
process that needs one module, a report worker or ``linkeval --help``, does not load SciPy,
statsmodels and matplotlib.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
