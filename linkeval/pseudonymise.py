"""NHS number validation and keyed pseudonyms (docs/design.md, 'Identity and pseudonymisation').

``person_id`` is the lowercase hex HMAC-SHA256 of the normalised NHS number under a secret study
key, so the same person gets the same ID at every site and in every run, and nobody without the
key can reverse it or test a guessed NHS number against it. Without an NHS number the message is
``"<site>:<local id>"``.

The key comes from an environment variable or a git-ignored file, never from the config, and is
never logged or written. Synthetic demo data uses :data:`DEMO_KEY`, which is published and so
protects nothing: it is accepted only when the config says ``demo: true``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from linkeval.errors import LinkevalError
from linkeval.parse import as_text, distinct

DEMO_KEY = b"linkeval-demo-key--published--not-secret"
MIN_KEY_BYTES = 16

_WEIGHTS = np.arange(10, 1, -1)  # Modulus 11 weights for digits 1-9
_STATUS = np.array(["invalid", "missing", "valid", "placeholder"], dtype=object)


def normalise_nhs_number(raw: pd.Series) -> pd.Series:
    """Strip spaces, dashes and other white space; blank -> missing. Does not validate.

    >>> normalise_nhs_number(pd.Series(["943 476 5919", "943-476-5919", "943\u00a04765919", " "])).tolist()
    ['9434765919', '9434765919', '9434765919', nan]
    """
    text = pa.array(raw.astype("str"), type=pa.large_string(), from_pandas=True)
    cleaned = pc.replace_substring(pc.replace_substring(text, " ", ""), "-", "")
    out = as_text(cleaned, raw.index)
    # Other white space (tabs, no-break spaces: Python's \s) only where a value has any
    # character beyond printable ASCII, which is rare.
    odd = pc.fill_null(pc.match_substring_regex(cleaned, r"[^\x21-\x7e]"), False)
    odd = odd.to_numpy(zero_copy_only=False)
    if odd.any():
        out[odd] = [re.sub(r"\s", "", value) for value in out[odd]]
    return out.mask(out == "")


def nhs_number_status(normalised: pd.Series) -> pd.Series:
    """Classify normalised NHS numbers: 'valid', 'missing', 'invalid' or 'placeholder'.

    Valid means exactly 10 digits passing the Modulus 11 check (weights 10..2 on digits 1-9,
    check = 11 - (sum mod 11), 11 -> 0, 10 -> never valid) and not ten identical digits, which
    pass the checksum but are placeholders (NHS Digital, NHS number check-digit specification).

    >>> nhs_number_status(pd.Series(["9434765919", "9434765918", "1111111111", None])).tolist()
    ['valid', 'invalid', 'placeholder', 'missing']
    """
    text = pa.array(normalised.astype("str"), type=pa.large_string(), from_pandas=True)
    missing = text.is_null().to_numpy(zero_copy_only=False)
    ten_digits = pc.fill_null(pc.match_substring_regex(text, "^[0-9]{10}$"), False)
    status = missing.astype(np.int8)  # a code per row: index into _STATUS
    rows = np.flatnonzero(ten_digits.to_numpy(zero_copy_only=False))
    if len(rows):
        # Each is ten ASCII digits, so their bytes lie end to end, ten to a number.
        numbers = text.take(pa.array(rows))
        offsets = np.frombuffer(numbers.buffers()[1], dtype=np.int64)[numbers.offset :]
        data = np.frombuffer(numbers.buffers()[2], dtype=np.uint8)
        data = data[offsets[0] : offsets[0] + 10 * len(rows)]
        digits = (data - ord("0")).reshape(-1, 10).astype(np.int64)
        check = 11 - (digits[:, :9] @ _WEIGHTS) % 11
        check = np.where(check == 11, 0, check)
        passes = (check != 10) & (check == digits[:, 9])
        placeholder = (digits == digits[:, [0]]).all(axis=1)
        status[rows] = np.where(placeholder, 3, np.where(passes, 2, 0))
    return pd.Series(_STATUS[status], index=normalised.index, dtype=object)


def is_valid_nhs_number(number: str) -> bool:
    """True for a valid NHS number (spaces and dashes allowed)."""
    return nhs_number_status(normalise_nhs_number(pd.Series([number]))).iloc[0] == "valid"


def pseudonym(key: bytes, message: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``message`` under ``key``."""
    return hmac.digest(key, message.encode("utf-8"), "sha256").hex()


def pseudonymise(key: bytes, messages: pd.Series) -> pd.Series:
    """:func:`pseudonym` of every message; computed once per distinct value.

    There is no vectorised HMAC. Each is made from SHA-256 states that already hold the
    padded key (RFC 2104, as :mod:`hmac` does inside): two SHA-256 blocks a message instead of
    four, 2.6x faster than ``hmac.digest`` one by one. The first is checked against
    ``hmac.digest``.
    """
    uniques, slots = distinct(messages)
    inner, outer = _padded_key_states(key)
    hashed = []
    for message in uniques:
        h = inner.copy()
        h.update(message.encode("utf-8"))
        o = outer.copy()
        o.update(h.digest())
        hashed.append(o.hexdigest())
    if hashed and hashed[0] != pseudonym(key, uniques[0]):
        raise RuntimeError("pseudonymise: the HMAC from padded-key states differs from hmac's")
    values = np.array([*hashed, None], dtype=object)
    return pd.Series(values[slots], index=messages.index, dtype=object)


def _padded_key_states(key: bytes) -> tuple:
    """SHA-256 fed the key XOR the inner pad, and the key XOR the outer pad (RFC 2104; a key
    longer than SHA-256's 64-byte block is hashed first)."""
    block = hashlib.sha256().block_size
    key = bytes(key)
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def load_key(key_env: str, key_file: Path | None, demo: bool = False) -> bytes:
    """The study key from ``$key_env`` or ``key_file`` (first found); the demo key for demos.

    Parameters
    ----------
    key_env : str
        Name of the environment variable holding the key (the config's
        ``pseudonymisation.key_env``, default ``LINKEVAL_KEY``); read first.
    key_file : Path or None
        A git-ignored file holding the key as one line of text (the config's
        ``pseudonymisation.key_file``); read when the variable is unset or empty.
    demo : bool, default False
        The config says ``demo: true``: without a key, use the published :data:`DEMO_KEY`.

    Returns
    -------
    bytes
        The key, UTF-8 encoded (surrounding whitespace of a key file removed).

    Raises
    ------
    LinkevalError
        With instructions, when there is no key (and not ``demo``), when it is shorter than
        16 bytes, holds control characters, or is the demo key in a real (non-demo) study.
        The message never quotes the key.

    Notes
    -----
    ``person_id`` = HMAC-SHA256(key, normalised NHS number), so the same key must be used for
    the whole study; :func:`key_fingerprint` tells keys apart without revealing them.

    References
    ----------
    Krawczyk H, Bellare M, Canetti R (1997) HMAC: keyed-hashing for message authentication.
    RFC 2104. docs/design.md, 'Identity and pseudonymisation'.

    Examples
    --------
    >>> import tempfile
    >>> key_file = Path(tempfile.mkdtemp()) / "study.key"
    >>> _ = key_file.write_text("0123456789abcdef0123456789abcdef")
    >>> load_key("LINKEVAL_DOCTEST_UNSET_KEY", key_file)
    b'0123456789abcdef0123456789abcdef'
    >>> load_key("LINKEVAL_DOCTEST_UNSET_KEY", None, demo=True) == DEMO_KEY
    True
    >>> load_key("LINKEVAL_DOCTEST_UNSET_KEY", None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    linkeval.errors.LinkevalError: no pseudonymisation key: set the environment variable ...
    >>> key_file.unlink(); key_file.parent.rmdir()
    """
    value = os.environ.get(key_env, "")
    source = f"environment variable {key_env}"
    if not value and key_file is not None and key_file.is_file():
        value = _read_key_file(key_file)
        source = f"key file {key_file}"
    if not value:
        if demo:
            return DEMO_KEY
        where = f" or put it in {key_file} (git-ignored)" if key_file else ""
        raise LinkevalError(
            f"no pseudonymisation key: set the environment variable {key_env}{where}, e.g. "
            f"export {key_env}=$(python -c 'import secrets; print(secrets.token_hex(32))'); "
            "keep the same key for the whole study and store it with the study's secrets"
        )
    key = value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise LinkevalError(
            f"pseudonymisation key from {source} is too short ({len(key)} bytes); use at least "
            f"{MIN_KEY_BYTES}, e.g. python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    if key == DEMO_KEY and not demo:
        raise LinkevalError(
            f"the key from {source} is the published demo key; real data needs a secret key"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise LinkevalError(
            f"the key from {source} contains control characters; write the key as one line of "
            "text, e.g. python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return key


def _read_key_file(path: Path) -> str:
    """A key file's text; an unreadable or binary one is an error that never quotes it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LinkevalError(
            f"key file {path}: cannot read it ({exc.strerror}); check its permissions"
        ) from None
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise LinkevalError(
            f"key file {path}: not a text key (binary content); write the key as one line of "
            "text, e.g. python -c 'import secrets; print(secrets.token_hex(32))' > key file"
        ) from None


def key_fingerprint(key: bytes) -> str:
    """A short public fingerprint of the study key: the HMAC of a fixed text under it.

    Recorded in the manifest so that a later run can tell whether it holds the same key; it
    reveals nothing about the key itself.

    >>> key_fingerprint(b"Jefe")
    '01c6c72c34a4c71d'
    """
    return hmac.digest(key, b"linkeval key fingerprint v1", "sha256").hex()[:16]
