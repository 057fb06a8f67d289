"""linkeval: cleaning, scoring and analysis for realist evaluations of social-prescribing link workers.

Start with :func:`linkeval.config.load_config` and :func:`linkeval.clean.clean_study`, or run
``linkeval demo`` to see the whole pipeline on synthetic data.
"""

__version__ = "0.1.0"
