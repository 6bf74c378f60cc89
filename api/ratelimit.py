"""Rate limiting: a token bucket per caller, in the API process's memory.

Keyed on who calls: the user or API key once identified, the client address before
(so a burst of unauthenticated requests or password guesses is limited too). A request
over the limit gets 429 with ``Retry-After``. One API process per deployment keeps the
buckets exact; behind several replicas each replica limits on its own.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from api.errors import TooManyRequests


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(
        self,
        per_s: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_s = per_s
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self.limited = 0  # requests refused, for the metrics
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def retry_after(self, key: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens from ``key``'s bucket; 0 if allowed, else the seconds to
        wait."""
        now = self.clock()
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)  # the least recently used caller
        else:
            self._buckets.move_to_end(key)
            b.tokens = min(float(self.burst), b.tokens + (now - b.at) * self.per_s)
            b.at = now
        if b.tokens >= cost:
            b.tokens -= cost
            return 0.0
        self.limited += 1
        return (cost - b.tokens) / self.per_s

    def check(self, key: str, what: str = "requests") -> None:
        wait = self.retry_after(key)
        if wait > 0:
            raise TooManyRequests(
                f"too many {what}; retry in {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))},
            )
