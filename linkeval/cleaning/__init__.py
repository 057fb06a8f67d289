"""Raw exports -> canonical, pseudonymised tables, with a cleaning log of every row.

The modules, in pipeline order: ``read`` (a source's files into one raw frame), ``routine``
(row rules for referrals, contacts and onward referrals), ``questionnaires`` (completions,
scores and pairs), ``site`` (one site end to end), ``study`` (all sites, then writing); ``log``
is the cleaning log and row accounting they share.
"""

from linkeval.cleaning.study import CleanResult, clean_study, write_outputs

__all__ = ["CleanResult", "clean_study", "write_outputs"]
