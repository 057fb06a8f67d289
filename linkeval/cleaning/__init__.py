"""Raw exports -> canonical, pseudonymised tables, with a cleaning log of every row."""

from linkeval.cleaning.study import CleanResult, clean_study, write_outputs

__all__ = ["CleanResult", "clean_study", "write_outputs"]
