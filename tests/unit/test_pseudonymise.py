"""NHS number Modulus 11 and HMAC-SHA256 pseudonyms against published test vectors."""

from __future__ import annotations

import hmac

import numpy as np
import pandas as pd
import pytest

from linkeval.errors import LinkevalError
from linkeval.pseudonymise import (
    DEMO_KEY,
    is_valid_nhs_number,
    load_key,
    nhs_number_status,
    normalise_nhs_number,
    pseudonym,
    pseudonymise,
)


def status(values):
    return nhs_number_status(normalise_nhs_number(pd.Series(values, dtype=object))).tolist()


def test_published_valid_nhs_number():
    # shared/reference: 943 476 5919 is valid (weighted sum 299, remainder 2, check digit 9).
    assert is_valid_nhs_number("943 476 5919")
    assert is_valid_nhs_number("943-476-5919")
    assert is_valid_nhs_number("9434765919")


def test_wrong_check_digit_is_invalid():
    assert status([f"943476591{d}" for d in range(10)]) == (["invalid"] * 9 + ["valid"])


def test_check_digit_ten_is_never_valid():
    # digits 1-9 = 000000006: weighted sum 6 x 2 = 12, 12 mod 11 = 1, 11 - 1 = 10 -> invalid.
    assert status([f"000000006{d}" for d in range(10)]) == ["invalid"] * 10


def test_ten_identical_digits_are_placeholders_although_they_pass_the_checksum():
    values = [str(d) * 10 for d in range(10)]
    assert status(values) == ["placeholder"] * 10


@pytest.mark.parametrize("value", ["943476591", "94347659190", "94347659I9", "943 476 591X"])
def test_wrong_length_or_characters_are_invalid(value):
    assert status([value]) == ["invalid"]


@pytest.mark.parametrize("dtype", [object, pd.StringDtype("pyarrow", na_value=float("nan"))])
def test_other_white_space_is_stripped_and_other_digits_are_not_digits(dtype):
    # Python's \s: tab, newline, no-break space, em space, unit separator all go; digits
    # that are not ASCII (full-width, superscript) are not NHS number digits.
    values = [
        "943\t476\n5919",
        "943\u00a0476\u20035919",
        "\x1f9434765919",
        "９434765919",
        "\u00b2434765919",
        "943 476 5919",
        None,
    ]
    expected = ["valid"] * 3 + ["invalid"] * 2 + ["valid", "missing"]
    assert nhs_number_status(normalise_nhs_number(pd.Series(values, dtype=dtype))).tolist() == (
        expected
    )


def test_blank_is_missing_not_invalid():
    assert status(["", "  ", None]) == ["missing"] * 3


def test_hmac_sha256_rfc4231_vectors():
    # RFC 4231 test case 2 and test case 1.
    assert pseudonym(b"Jefe", "what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert pseudonym(b"\x0b" * 20, "Hi There") == (
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    )


@pytest.mark.parametrize("key_bytes", [16, 20, 63, 64, 65, 131])
def test_pseudonymise_agrees_with_hmac_for_keys_of_any_length(key_bytes):
    # pseudonymise builds each HMAC from the padded key's SHA-256 states; hmac.digest (OpenSSL)
    # is the reference, for keys shorter than, as long as and longer than SHA-256's block.
    rng = np.random.default_rng(key_bytes)
    key = rng.integers(0, 256, key_bytes, dtype=np.uint8).tobytes()
    messages = ["", "9434765919", "A:ünïcode-ID", "x" * 200] + [
        f"{n:010d}" for n in rng.integers(0, 10**10, 200)
    ]
    out = pseudonymise(key, pd.Series(messages, dtype=object))
    assert out.tolist() == [hmac.digest(key, m.encode("utf-8"), "sha256").hex() for m in messages]


def test_pseudonymise_matches_rfc4231_for_a_key_longer_than_a_block():
    # RFC 4231 test case 6: a 131-byte key, hashed first.
    message = "Test Using Larger Than Block-Size Key - Hash Key First"
    out = pseudonymise(b"\xaa" * 131, pd.Series([message], dtype=object))
    assert out[0] == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"


def test_pseudonymise_is_per_value_and_keeps_missing():
    out = pseudonymise(
        b"Jefe",
        pd.Series(
            ["what do ya want for nothing?", None, "what do ya want for nothing?"], dtype=object
        ),
    )
    assert out[0] == out[2] == pseudonym(b"Jefe", "what do ya want for nothing?")
    assert pd.isna(out[1])


def test_key_from_environment(monkeypatch):
    monkeypatch.setenv("STUDY_KEY", "a-long-enough-secret-key")
    assert load_key("STUDY_KEY", None) == b"a-long-enough-secret-key"


def test_key_from_file(tmp_path, monkeypatch):
    monkeypatch.delenv("STUDY_KEY", raising=False)
    (tmp_path / "k").write_text("file-secret-key-0123456789\n")
    assert load_key("STUDY_KEY", tmp_path / "k") == b"file-secret-key-0123456789"


def test_no_key_says_how_to_set_one(monkeypatch, tmp_path):
    monkeypatch.delenv("STUDY_KEY", raising=False)
    with pytest.raises(LinkevalError, match="set the environment variable STUDY_KEY"):
        load_key("STUDY_KEY", tmp_path / "missing.key")


def test_short_key_and_demo_key_are_refused_for_real_data(monkeypatch):
    monkeypatch.setenv("STUDY_KEY", "short")
    with pytest.raises(LinkevalError, match="too short"):
        load_key("STUDY_KEY", None)
    monkeypatch.setenv("STUDY_KEY", DEMO_KEY.decode())
    with pytest.raises(LinkevalError, match="published demo key"):
        load_key("STUDY_KEY", None)


def test_demo_config_falls_back_to_demo_key(monkeypatch):
    monkeypatch.delenv("STUDY_KEY", raising=False)
    assert load_key("STUDY_KEY", None, demo=True) == DEMO_KEY
