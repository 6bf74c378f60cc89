"""Exponential backoff with jitter, for every reconnect and retry loop."""

from __future__ import annotations

import random


class Backoff:
    """Delays grow ``base_s * 2**n`` up to ``cap_s``; each is drawn from [d/2, d] so that
    many gateways that lost the broker together do not all come back at once."""

    def __init__(
        self, base_s: float = 0.5, cap_s: float = 30.0, rng: random.Random | None = None
    ) -> None:
        if base_s <= 0 or cap_s < base_s:
            raise ValueError("need 0 < base_s <= cap_s")
        self.base_s, self.cap_s, self.attempt = base_s, cap_s, 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        delay = min(self.cap_s, self.base_s * 2 ** min(self.attempt, 62))
        self.attempt += 1
        return self._rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0
