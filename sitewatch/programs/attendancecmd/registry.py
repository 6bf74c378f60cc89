"""``sitewatch attendance import|workers|policy``: the worker registry and the site's
attendance policy at the site office's terminal. Imports go through
``sitewatch.domains.attendance.registration``, as the API's do; the ID-number key is the
API's ``attendance.id_hash_key``, given here by :data:`ID_KEY_ENV` or a file. Standard
library only at the top."""

from __future__ import annotations

import argparse
import os
import sys

from sitewatch.programs.attendancecmd.action import fail, now_ms, open_session

#: where ``import`` reads the ID-number key from (the API: attendance.id_hash_key)
ID_KEY_ENV = "SITEWATCH_ATTENDANCE_ID_HASH_KEY"
MIN_KEY_CHARS = 32


def _id_key(args: argparse.Namespace) -> str | None:
    from sitewatch.domains.attendance.idcard import DEV_ID_KEY

    if args.id_key_file is not None:
        return args.id_key_file.read_text(encoding="utf-8").strip() or None
    return os.environ.get(ID_KEY_ENV) or (DEV_ID_KEY if args.development else None)


def cmd_import(args: argparse.Namespace) -> int:
    from sitewatch.domains.registry import Registry

    try:
        key = _id_key(args)
        data = args.file.read_bytes()
    except OSError as exc:
        return fail(args, f"cannot read {exc.filename}: {exc.strerror}", 2)
    if key is None:
        return fail(
            args,
            f"no ID-number key: set {ID_KEY_ENV} or give --id-key-file "
            "(the API's attendance.id_hash_key), or --development",
            2,
        )
    if len(key) < MIN_KEY_CHARS:
        return fail(args, f"the ID-number key needs at least {MIN_KEY_CHARS} characters", 2)
    with open_session(args) as s:
        if Registry(s).site(args.site) is None:
            return fail(args, f"no site {args.site} in the registry")
        from sitewatch.domains.attendance.registration import import_workers

        try:
            done = import_workers(
                s, data, args.file.name, site=args.site, id_key=key, now_ms=now_ms()
            )
        except ValueError as exc:
            return fail(args, str(exc), 2)
        if done.errors:
            for e in done.errors:
                where = f"row {e.row}" + (f", {e.column}" if e.column else "")
                print(f"{where}: {e.message}", file=sys.stderr)
            return fail(args, f"{len(done.errors)} error(s); nothing imported")
        s.commit()
    print(f"{args.site}: {done.created} workers added, {done.updated} updated")
    return 0


def cmd_workers(args: argparse.Namespace) -> int:
    from sitewatch.domains.attendance.sitepolicy import get_policy
    from sitewatch.domains.attendance.workers import WorkerInfo, Workers

    with open_session(args) as s:
        today = get_policy(s, args.site).day_of(now_ms())
        offset, total = 0, 1
        while offset < total:
            page = Workers(s).page(args.site, team=args.team, offset=offset, limit=500)
            for r in page.items:
                lapsed = ",".join(WorkerInfo.of(r).lapsed(today))
                flags = ("lead " if r.team_lead else "") + ("" if r.active else "inactive ")
                print(
                    f"{r.id:12} {r.name:10} {r.team:12} {r.trade or '-':8} "
                    f"{r.subcontractor or '-':16} {r.day_rate:>8} {r.id_masked or '-':18} "
                    f"{flags}{'LAPSED ' + lapsed if lapsed else ''}".rstrip()
                )
            offset, total = offset + len(page.items), page.total
            if not page.items:
                break
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from sitewatch.domains.attendance.policy import AttendancePolicy
    from sitewatch.domains.attendance.sitepolicy import get_policy, put_policy

    with open_session(args) as s:
        current = get_policy(s, args.site)
        if args.set:
            changes: dict[str, str] = {}
            for item in args.set:
                key, sep, value = item.partition("=")
                if not sep:
                    return fail(args, f"--set {item!r}: want KEY=VALUE", 2)
                changes[key.strip()] = value.strip()
            try:
                current = AttendancePolicy.model_validate({**current.model_dump(), **changes})
            except ValidationError as exc:
                from sitewatch.domains.attendance.registration import policy_problems

                return fail(args, policy_problems(exc), 2)
            put_policy(s, args.site, current, now_ms())
            s.commit()
    for key, value in current.model_dump(mode="json").items():
        print(f"{key}: {value}")
    return 0
