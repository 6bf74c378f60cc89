"""Realistic attendance days for a site, with the hours the sheets must credit.

A simulated workforce (teams, subcontractors, trades, day rates, some with lapsed
training) works a run of days: most arrive around 07:00, some go out for lunch, some
work overtime and a few stay past midnight; some days are off. Gate terminals record
what real ones do: swipes at either gate, a face scanned twice, a forgotten exit, a
tailgated entry, and now and then a visitor who is not registered.

For every worker-day the simulator also works out, from what it knows really
happened, what the documented rules (docs/attendance.md) credit - for a forgotten
exit, up to the shift end; for a forgotten entry, from the shift start - independently
of ``sitewatch.domains.attendance.hours``. Tests compare the day-labour sheets with it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal

from sitewatch.core import contract
from sitewatch.domains.attendance import idcard
from sitewatch.domains.attendance.policy import MINUTE_MS, AttendancePolicy
from sitewatch.domains.attendance.workers import WorkerRow

Direction = Literal["in", "out"]
Method = Literal["face", "card", "fingerprint", "manual"]

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
_GIVEN = "伟芳娜敏静强磊军洋勇艳杰涛明超秀兰霞平刚桂英华建国志红金玉春林海波东"
#: (team, trade, day rate range in yuan, subcontractor)
_TEAMS = [
    ("钢筋一班", "钢筋工", (380, 460), "恒达劳务有限公司"),
    ("木工一班", "木工", (400, 480), "恒达劳务有限公司"),
    ("混凝土班", "混凝土工", (330, 400), "宏建劳务有限公司"),
    ("架子班", "架子工", (420, 500), "宏建劳务有限公司"),
    ("瓦工班", "瓦工", (350, 420), "宏建劳务有限公司"),
    ("水电班", "水电工", (380, 450), "安泰机电安装公司"),
    ("杂工班", "普工", (260, 320), "恒达劳务有限公司"),
]
HOUR = 60 * MINUTE_MS


@dataclass(frozen=True, slots=True)
class SimWorker:
    id: str
    name: str
    team: str
    team_lead: bool
    subcontractor: str
    trade: str
    day_rate: Decimal
    training_expires: date
    certificate_expires: date | None
    id_number: str


@dataclass(frozen=True, slots=True)
class Swipe:
    ts: int
    worker: str
    direction: Direction
    gate: str
    method: Method


@dataclass(slots=True)
class Simulation:
    swipes: list[Swipe] = field(default_factory=list)
    #: (worker, attendance day) -> credited milliseconds under the documented rules
    credited_ms: dict[tuple[str, date], int] = field(default_factory=dict)
    #: what happened, for reading a test failure: (worker, day) -> the day's story
    stories: dict[tuple[str, date], str] = field(default_factory=dict)

    def minutes(self) -> dict[tuple[str, date], int]:
        return {k: ms // MINUTE_MS for k, ms in self.credited_ms.items() if ms > 0}


def worker_rows(workers: list[SimWorker], site: str, id_key: str, now_ms: int) -> list[WorkerRow]:
    """The workforce as the site's worker registry (ID numbers hashed and masked)."""
    return [
        WorkerRow(
            site=site,
            id=w.id,
            name=w.name,
            team=w.team,
            team_lead=w.team_lead,
            subcontractor=w.subcontractor,
            trade=w.trade,
            day_rate=w.day_rate,
            training_expires=w.training_expires,
            certificate_expires=w.certificate_expires,
            id_hash=idcard.keyed_hash(w.id_number, id_key),
            id_masked=idcard.mask(w.id_number),
            active=True,
            updated_at=now_ms,
        )
        for w in workers
    ]


def id_number(rng: random.Random) -> str:
    """A made-up ID-card number with a valid GB 11643 check character."""
    birth = date(1965, 1, 1) + timedelta(days=rng.randrange(365 * 38))
    region = f"13{rng.randrange(10, 99)}{rng.randrange(10, 99)}"
    body = f"{region}{birth:%Y%m%d}{rng.randrange(1000):03d}"
    return body + idcard.check_character(body)


def workforce(n: int, *, seed: int = 1, today: date = date(2026, 11, 2)) -> list[SimWorker]:
    """``n`` workers in teams of the usual trades; about 3 % with lapsed training."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        team, trade, (lo, hi), sub = _TEAMS[i % len(_TEAMS)]
        lapsed = rng.random() < 0.03
        training = today + timedelta(
            days=rng.randrange(-60, -1) if lapsed else rng.randrange(30, 700)
        )
        cert = (
            today + timedelta(days=rng.randrange(90, 900))
            if trade in ("架子工", "水电工")
            else None
        )
        out.append(
            SimWorker(
                f"W{i + 1:05d}",
                rng.choice(_SURNAMES) + "".join(rng.sample(_GIVEN, 2)),
                team,
                i < len(_TEAMS),
                sub,
                trade,
                Decimal(rng.randrange(lo, hi + 1, 10)),
                training,
                cert,
                id_number(rng),
            )
        )
    return out


class _Day:
    """One worker's swipes on one day, with what the rules credit for them."""

    def __init__(
        self,
        sim: Simulation,
        rng: random.Random,
        worker: str,
        day: date,
        policy: AttendancePolicy,
        gates: tuple[str, ...],
    ) -> None:
        self.sim, self.rng, self.worker, self.day = sim, rng, worker, day
        self.policy, self.gates = policy, gates
        self.shift_start, self.shift_end = policy.shift_bounds(day)
        self.credited = 0
        self.story: list[str] = []

    def swipe(self, ts: int, direction: Direction) -> None:
        rng = self.rng
        method: Method = rng.choices(("face", "card", "fingerprint"), (80, 15, 5))[0]
        gate = rng.choice(self.gates)
        self.sim.swipes.append(Swipe(ts, self.worker, direction, gate, method))
        if rng.random() < 0.08:  # scanned twice, maybe at the other gate: one swipe
            again = ts + rng.randrange(3_000, 55_000)
            self.sim.swipes.append(
                Swipe(again, self.worker, direction, rng.choice(self.gates), method)
            )
            self.story.append("double swipe")

    def at(self, hour: float, jitter_min: float) -> int:
        start, _ = self.policy.day_bounds(self.day)
        base = start + round((hour - _hours(self.policy.day_start)) * HOUR)
        return base + round(self.rng.gauss(0, jitter_min) * MINUTE_MS) + self.rng.randrange(1000)

    def work(self, sessions: list[tuple[int, int]], forget_in: bool, forget_out: bool) -> None:
        """Swipe through ``sessions``; the first entry or the last exit maybe forgotten."""
        prev_swipe: int | None = None
        for k, (t_in, t_out) in enumerate(sessions):
            first, last = k == 0, k == len(sessions) - 1
            if first and forget_in:
                self.story.append("tailgated in")
                start = max(self.shift_start, prev_swipe or self.shift_start)
                self.credited += max(0, t_out - start) if not (last and forget_out) else 0
            else:
                self.swipe(t_in, "in")
                start = t_in
            if last and forget_out:
                self.story.append("forgot to swipe out")
                if not (first and forget_in):
                    self.credited += max(0, max(start, self.shift_end) - start)
                continue
            self.swipe(t_out, "out")
            if not (first and forget_in):
                self.credited += t_out - start
            prev_swipe = t_out

    def done(self) -> None:
        key = (self.worker, self.day)
        self.sim.credited_ms[key] = self.credited
        self.sim.stories[key] = ", ".join(self.story) or "plain"


def _hours(hhmm: str) -> float:
    h, m = hhmm.split(":")
    return int(h) + int(m) / 60


def simulate(
    workers: list[SimWorker],
    first: date,
    days: int,
    *,
    policy: AttendancePolicy | None = None,
    seed: int = 7,
    gates: tuple[str, ...] = ("GATE01", "GATE02"),
    visitors_per_day: int = 2,
) -> Simulation:
    """``days`` attendance days from ``first``."""
    policy = policy or AttendancePolicy()
    rng = random.Random(seed)
    sim = Simulation()
    for d in range(days):
        day = first + timedelta(days=d)
        for w in workers:
            _worker_day(sim, rng, w.id, day, policy, gates)
        for v in range(visitors_per_day):  # not registered: on no sheet, alerted
            visitor = _Day(sim, rng, f"V{day:%m%d}{v}", day, policy, gates)
            visitor.swipe(visitor.at(9 + v, 30), "in")
            visitor.swipe(visitor.at(10.5 + v, 20), "out")
    sim.swipes.sort(key=lambda s: s.ts)
    return sim


def _worker_day(
    sim: Simulation,
    rng: random.Random,
    worker: str,
    day: date,
    policy: AttendancePolicy,
    gates: tuple[str, ...],
) -> None:
    off = rng.random() < (0.5 if day.weekday() == 6 else 0.07)
    if off:
        return
    d = _Day(sim, rng, worker, day, policy, gates)
    arrive = d.at(6.9, 9)
    roll = rng.random()
    if roll < 0.03:  # a crew kept on past midnight
        d.story.append("past midnight")
        leave = d.at(24 + 1.2, 20)
    elif roll < 0.23:
        d.story.append("overtime")
        leave = d.at(19.5, 40)
    else:
        leave = d.at(17.4, 12)
    sessions = [(arrive, leave)]
    if rng.random() < 0.35:
        d.story.append("lunch out")
        out, back = d.at(12.0, 4), d.at(13.0, 6)
        sessions = [(arrive, out), (back, leave)]
    d.work(sessions, forget_in=rng.random() < 0.03, forget_out=rng.random() < 0.03)
    d.done()


def gate_events(sim: Simulation) -> list[contract.AttendanceItem]:
    """The swipes as contract items: each gate numbers its events from 1, in time order."""
    seqs: dict[str, int] = {}
    out = []
    for s in sim.swipes:
        seqs[s.gate] = seqs.get(s.gate, 0) + 1
        out.append(
            contract.AttendanceItem(
                device=s.gate,
                ts=s.ts,
                seq=seqs[s.gate],
                worker=s.worker,
                direction=s.direction,
                method=s.method,
            )
        )
    return out


def batches(
    items: list[contract.AttendanceItem],
    *,
    size: int = 200,
    first_batch: int = 1,
    sent_ms: int | None = None,
) -> Iterator[bytes]:
    """Contract batches of ``size`` items, as a gateway sends them (``batch`` numbered
    from ``first_batch``)."""
    for k, i in enumerate(range(0, len(items), size)):
        chunk = items[i : i + size]
        yield contract.encode(
            contract.AttendanceBatch(
                v=1, batch=first_batch + k, sent=sent_ms or chunk[-1].ts, items=chunk
            )
        )
