"""Append-only hash chains (alert history, attendance ledger): hashing and checking.

Entry *n* stores the hash of entry *n-1* and its own SHA-256 over its content and that
previous hash, so altering or removing an entry breaks the chain; a head row (last *n*
and hash), updated in the same transaction as each append, makes removing the newest
entries visible too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

GENESIS = "0" * 64


def link_hash(fields: Sequence[object]) -> str:
    """SHA-256 of the entry's fields (JSON scalars, the previous hash last)."""
    canonical = json.dumps(list(fields), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class ChainCheck:
    """Feed entries in order of *n*; collects what is wrong, in words."""

    def __init__(self, what: str = "entry") -> None:
        self.what = what
        self.problems: list[str] = []
        self.entries = 0
        self.prev = GENESIS
        self.expected_n = 1

    def entry(self, n: int, prev_hash: str, stored_hash: str, recomputed: str) -> None:
        self.entries += 1
        w = self.what
        if n != self.expected_n:
            self.problems.append(
                f"{w} {self.expected_n}"
                + (f"..{n - 1}" if n - 1 > self.expected_n else "")
                + " missing"
            )
        if prev_hash != self.prev:
            self.problems.append(f"{w} {n}: previous hash does not match {w} before")
        if recomputed != stored_hash:
            self.problems.append(f"{w} {n}: content does not match its hash (altered)")
        self.prev, self.expected_n = stored_hash, n + 1

    def head(self, head: tuple[int, str] | None, head_name: str) -> None:
        last = self.expected_n - 1
        if head is None:
            if last:
                self.problems.append(f"{head_name} head row missing")
        elif head[0] != last or head[1] != self.prev:
            self.problems.append(
                f"chain head says {head[0]} entries, history ends at "
                f"{last}: entries removed from the end"
            )
