"""Synthetic demo studies: raw exports in several sites' shapes, with their ground truth."""

from linkeval.synthetic.generate import SyntheticStudy, generate_study

__all__ = ["SyntheticStudy", "generate_study"]
