"""A site's attendance policy over HTTP: read it, or replace it (keys left out take
defaults; a wrong key is a 400 naming it, as ``sitewatch attendance policy`` says)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import ValidationError

from api.attendance.params import now_ms
from api.deps import SessionDep
from api.errors import BadRequest, responses
from api.siteaccess import ReadSite, WorkersSite
from sitewatch.domains.attendance.policy import AttendancePolicy
from sitewatch.domains.attendance.registration import policy_problems
from sitewatch.domains.attendance.sitepolicy import get_policy, put_policy

router = APIRouter(tags=["attendance"])


@router.get(
    "/sites/{site}/attendance/policy",
    response_model=AttendancePolicy,
    responses=responses(401, 403, 404, 422, 429),
)
def read_policy(access: ReadSite, session: SessionDep) -> AttendancePolicy:
    return get_policy(session, access.id)


@router.put(
    "/sites/{site}/attendance/policy",
    response_model=AttendancePolicy,
    responses=responses(400, 401, 403, 404, 422, 429),
    summary="replace the site's attendance policy (keys left out take defaults)",
)
def write_policy(
    access: WorkersSite, body: Annotated[dict[str, Any], Body()], session: SessionDep
) -> AttendancePolicy:
    # a dict, not the model: a wrong key is a 400 naming it, as sitewatch attendance says
    site = access.id
    try:
        policy = AttendancePolicy.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(
            f"invalid attendance policy: {policy_problems(exc)}",
            [
                {"key": ".".join(str(x) for x in e["loc"]) or None, "message": e["msg"]}
                for e in exc.errors()
            ],
        ) from None
    put_policy(session, site, policy, now_ms())
    session.commit()
    return policy
