"""Who is calling and what they may do: OAuth2 password log-in with JWTs, or API keys.

``POST /auth/token`` (form fields ``username``, ``password``, optional ``scope``) returns
a bearer token signed with ``auth.secret_key`` (HS256), valid ``auth.token_ttl_s``.
Machine clients send ``X-API-Key: swk_<id>_<secret>`` instead; a ``vendor`` key is
bound to one gateway and reads only that gateway's dead letters. Every other route asks
for scopes (:class:`sitewatch.domains.accounts.Scope`) through :func:`authorized`; a site's data
is only served to a caller who may see that site (:mod:`api.siteaccess`). The account is
looked up on every request, so disabling a user or revoking a key takes effect at once.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, Request, Security
from fastapi.security import (
    APIKeyHeader,
    OAuth2PasswordBearer,
    OAuth2PasswordRequestForm,
    SecurityScopes,
)
from pydantic import BaseModel
from sqlalchemy.orm import Session

from api.deps import SessionDep, StateDep
from api.errors import Forbidden, Unauthorized, responses
from sitewatch.domains.accounts import (
    SCOPE_HELP,
    Principal,
    Scope,
    UserRow,
    authenticate,
    check_api_key,
    key_gateway,
    principal_for,
)

router = APIRouter(tags=["auth"])

ALGORITHM = "HS256"
oauth2 = OAuth2PasswordBearer(tokenUrl="/auth/token", scopes=dict(SCOPE_HELP), auto_error=False)
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an API key: swk_<id>_<secret>"
)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    scope: str


class Me(BaseModel):
    name: str
    role: str
    scopes: list[str]
    sites: list[str] | None  # None: every site
    #: a vendor key's gateway (of its one site); None for every other account
    gateway: str | None = None


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post(
    "/auth/token",
    response_model=Token,
    responses=responses(400, 401, 422, 429),
    summary="log in with username and password (OAuth2 password flow)",
)
def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    state: StateDep,
    session: SessionDep,
) -> Token:
    state.login_limiter.check(f"addr:{_client(request)}", "log-in attempts")
    state.login_limiter.check(f"user:{form.username}", "log-in attempts")
    user = authenticate(session, form.username, form.password)
    if user is None:
        raise Unauthorized("wrong username or password")
    session.commit()  # a rehashed password
    p = principal_for("user", user.username, user.role, user.sites, form.scopes or None)
    now = int(time.time())
    ttl = state.settings.auth.token_ttl_s
    claims = {
        "sub": p.name,
        "scopes": sorted(p.scopes),
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, state.settings.secret_key, algorithm=ALGORITHM)
    return Token(access_token=token, expires_in=ttl, scope=" ".join(sorted(p.scopes)))


def _from_token(token: str, state: StateDep, session: Session) -> Principal:
    try:
        claims = jwt.decode(
            token,
            state.settings.secret_key,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp", "iat"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired; log in again") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    kind, _, name = str(claims["sub"]).partition(":")
    user = session.get(UserRow, name) if kind == "user" else None
    if user is None or user.disabled:
        raise Unauthorized("the token's account no longer exists or is disabled")
    scopes = claims.get("scopes")
    if not isinstance(scopes, list):
        raise Unauthorized("invalid token: no scopes")
    return principal_for("user", user.username, user.role, user.sites, [str(s) for s in scopes])


def current_principal(
    request: Request,
    state: StateDep,
    token: Annotated[str | None, Depends(oauth2)],
    api_key: Annotated[str | None, Depends(api_key_header)],
) -> Principal:
    limiter = state.limiter if state.settings.rate_limit.enabled else None
    try:
        p = _identify(state, token, api_key)
    except Unauthorized:
        # no credentials, a bad key, a forged, expired or malformed token, a disabled
        # account: all the same to the limiter, a request charged to the client's address
        if limiter:
            limiter.check(f"addr:{_client(request)}")
        raise
    if limiter:
        limiter.check(p.name)
    return p


def _identify(state: StateDep, token: str | None, api_key: str | None) -> Principal:
    if token is None and api_key is None:
        raise Unauthorized("not authenticated: send a bearer token or an X-API-Key")
    # a session of its own, closed before the handler runs: a request waiting on
    # InfluxDB must not hold one of the pool's connections (found by bench/api_latency)
    with state.sessions() as session:
        if token is not None:
            return _from_token(token, state, session)
        assert api_key is not None
        key = check_api_key(session, api_key)
        if key is None:
            raise Unauthorized("unknown or revoked API key")
        return principal_for(
            "key", key.id, key.role, key.sites, gateway=key_gateway(session, key.id)
        )


async def authorized(
    security: SecurityScopes, p: Annotated[Principal, Depends(current_principal)]
) -> Principal:
    missing = [s for s in security.scopes if Scope(s) not in p.scopes]
    if missing:
        raise Forbidden(
            f"this needs scope {', '.join(missing)}",
            {"missing_scopes": missing, "granted": sorted(p.scopes)},
        )
    return p


Reader = Annotated[Principal, Security(authorized, scopes=[Scope.READ])]
Admin = Annotated[Principal, Security(authorized, scopes=[Scope.ADMIN])]


@router.get("/auth/me", response_model=Me, responses=responses(401, 429))
async def me(p: Annotated[Principal, Depends(current_principal)]) -> Me:
    visible = p.visible_sites()
    return Me(
        name=p.name,
        role=p.role.value,
        scopes=sorted(p.scopes),
        sites=sorted(visible) if visible is not None else None,
        gateway=p.gateway,
    )
