"""Finding IDs (referral IDs, mostly) in other tables, as Arrow hash lookups.

Exports run to millions of rows: these work on Arrow arrays, with no Python object per value.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def positions(values, lookup) -> np.ndarray:
    """Position of each value in ``lookup`` (its first occurrence); -1 where absent or missing."""
    found = pc.index_in(large_text(values), value_set=large_text(lookup))
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def known_ids(parts: list[pa.Array]) -> pa.Array:
    """Every non-blank referral_id of the referrals exports, kept or rejected, once each."""
    if not parts:
        return pa.array([], type=pa.large_string())
    ids = pa.concat_arrays(parts).unique()
    return ids.filter(pc.not_equal(pc.utf8_trim_whitespace(ids), ""))


def large_text(values) -> pa.Array:
    """Text values (a Series, a list or Arrow) as one Arrow large_string array."""
    if not isinstance(values, pa.Array | pa.ChunkedArray):
        values = pa.array(values, from_pandas=True, type=None if len(values) else pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type == pa.null():
        values = values.cast(pa.string())
    return values.cast(pa.large_string())
