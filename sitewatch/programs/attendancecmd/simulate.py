"""``sitewatch attendance simulate``: the gate terminals of a simulated workforce
(``simulators.attendance_days``) pushing to a gateway's http_push listener,
or that workforce as a worker list to import. Standard library only at the top."""

from __future__ import annotations

import argparse
import os
import sys

from sitewatch.programs.attendancecmd.action import fail

#: each gate's bearer token, GATE01=token,GATE02=token
GATE_TOKENS_ENV = "SITEWATCH_ATTENDANCE_GATE_TOKENS"


def cmd_simulate(args: argparse.Namespace) -> int:
    import asyncio
    import csv
    import logging

    from simulators.attendance_days import workforce
    from simulators.attendance_feed import FeedOptions, run_feed
    from sitewatch.core.signals import stop_on_signals

    workers = workforce(args.workers, seed=args.seed)
    if args.print_workers:  # the office's worker list for this workforce, to import
        out = csv.writer(sys.stdout)
        out.writerow(
            [
                "工号",
                "姓名",
                "班组",
                "班组长",
                "分包单位",
                "工种",
                "日工资",
                "培训有效期",
                "证书有效期",
                "身份证号",
            ]
        )
        for w in workers:
            out.writerow(
                [
                    w.id,
                    w.name,
                    w.team,
                    "是" if w.team_lead else "否",
                    w.subcontractor,
                    w.trade,
                    w.day_rate,
                    w.training_expires,
                    w.certificate_expires or "",
                    w.id_number,
                ]
            )
        return 0
    tokens = dict(
        item.split("=", 1) for item in os.environ.get(GATE_TOKENS_ENV, "").split(",") if "=" in item
    )
    if not tokens:
        return fail(args, f"no gate tokens: set {GATE_TOKENS_ENV}=GATE01=token,...", 2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def main() -> int:
        stop = asyncio.Event()
        stop_on_signals(stop.set)
        return await run_feed(
            FeedOptions(args.url.rstrip("/"), tokens, args.days_back, args.live, args.seed),
            workers,
            stop=stop,
        )

    sent = asyncio.run(main())
    print(f"{sent} gate events delivered")
    return 0
