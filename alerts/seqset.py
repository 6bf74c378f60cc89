"""Which sequence numbers of a device were seen: late or resent readings are evaluated
once (the alert engine) and camera events counted once (the camera watch)."""

from __future__ import annotations

from bisect import bisect_right


class SeqSet:
    """Sequence numbers seen, as sorted disjoint ranges; O(1) for the in-order case.

    At most ``max_ranges`` ranges are kept: beyond that the oldest range is forgotten and
    every number at or below it counts as seen (``floor``). Gateways number readings in
    order and resend in order, so ranges merge and this bound is far away in practice.
    """

    __slots__ = ("ends", "floor", "max_ranges", "starts")

    def __init__(self, max_ranges: int = 256) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.floor = -1
        self.max_ranges = max_ranges

    def add(self, seq: int) -> bool:
        """Record ``seq``; False if it was seen before."""
        starts, ends = self.starts, self.ends
        if ends and seq == ends[-1] + 1:
            ends[-1] = seq
            return True
        if seq <= self.floor:
            return False
        i = bisect_right(starts, seq) - 1
        if i >= 0 and seq <= ends[i]:
            return False
        joins_left = i >= 0 and ends[i] == seq - 1
        joins_right = i + 1 < len(starts) and starts[i + 1] == seq + 1
        if joins_left and joins_right:
            ends[i] = ends[i + 1]
            del starts[i + 1], ends[i + 1]
        elif joins_left:
            ends[i] = seq
        elif joins_right:
            starts[i + 1] = seq
        else:
            starts.insert(i + 1, seq)
            ends.insert(i + 1, seq)
            if len(starts) > self.max_ranges:
                self.floor = ends[0]
                del starts[0], ends[0]
        return True
