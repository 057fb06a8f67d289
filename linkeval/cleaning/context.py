"""What every cleaning rule of one site needs: the study, the site, the key, the run date, the log."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from linkeval.cleaning.log import CleaningLog
from linkeval.cleaning.read import read_source
from linkeval.config import Site, Source, StudyConfig


@dataclass(frozen=True)
class Context:
    """Passed to every rule; rules record into ``log`` and keep no other state."""

    cfg: StudyConfig
    site: Site
    key: bytes  # for pseudonyms
    today: pd.Timestamp  # dates after it are in the future
    log: CleaningLog

    def read(self, source: Source) -> pd.DataFrame:
        """The source's raw frame (blank rows and exact duplicates already rejected)."""
        return read_source(self.cfg.raw_dir, self.site, source, self.log)
