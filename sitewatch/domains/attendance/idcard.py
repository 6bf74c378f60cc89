"""ID-card numbers (居民身份证号码): checked, keyed-hashed, masked. Never stored or shown
whole.

The registry keeps an HMAC-SHA256 of the number under a key that is not in the
database (an 18-character number has few enough possibilities that a plain hash could
be reversed by trying them all) and a masked form (first 3 and last 4 characters) for
people to recognise it. The hash finds the same person registered twice.
"""

from __future__ import annotations

import hashlib
import hmac
import re

#: GB 11643-1999 weights of the first 17 digits, and the check character per remainder
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_FORM = re.compile(r"^(\d{17}[\dX]|\d{15})$")

#: the key used in development when none is configured; refused in production
DEV_ID_KEY = "sitewatch-development-id-key-not-for-production"


class IdCardError(ValueError):
    """An ID number that cannot be right; the message never contains the number."""


def normalise(raw: str) -> str:
    return raw.strip().replace(" ", "").upper()


def check(raw: str) -> str:
    """The number in canonical form, or IdCardError saying what is wrong with it."""
    n = normalise(raw)
    if not _FORM.match(n):
        raise IdCardError(
            f"not an ID-card number: {len(n)} characters, want 18 "
            "(17 digits and a digit or X) or 15 digits"
        )
    if len(n) == 18:
        if check_character(n[:17]) != n[17]:
            raise IdCardError(
                "ID-card number's check character does not match (GB 11643): a typing error?"
            )
    return n


def check_character(first17: str) -> str:
    """The 18th character that GB 11643 computes from the first 17 digits."""
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def mask(number: str) -> str:
    n = normalise(number)
    if len(n) <= 7:
        return "*" * len(n)
    return n[:3] + "*" * (len(n) - 7) + n[-4:]


def keyed_hash(number: str, key: str) -> str:
    return hmac.new(key.encode(), normalise(number).encode(), hashlib.sha256).hexdigest()
