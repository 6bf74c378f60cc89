"""The demo's broker accounts, with passwords made at each start, and a child's account
handed to it in its environment."""

from __future__ import annotations

from sitewatch.domains.brokeraccounts.brokerauth import (
    Account,
    Role,
    gateway_username,
    hash_password,
    new_password,
)


def broker_accounts(sites: int) -> tuple[list[Account], dict[str, str]]:
    """Accounts for this run, with passwords made at start: ingest, the alert service,
    one per simulated gateway, and two for looking on (``observer`` reads everything,
    ``monitor`` the alerts). Only their hashes are written to disk."""
    accounts: list[Account] = []
    passwords: dict[str, str] = {}

    def add(username: str, role: Role, site: str | None = None, gateway: str | None = None) -> None:
        passwords[username] = new_password()
        accounts.append(Account(username, hash_password(passwords[username]), role, site, gateway))

    add("ingest", Role.INGEST)
    add("alerts", Role.ALERTS)
    add("observer", Role.OBSERVER)
    add("monitor", Role.MONITOR)
    for i in range(1, sites + 1):
        site, gateway = f"SITE{i:02d}", f"GW{i:02d}"
        add(gateway_username(site, gateway), Role.GATEWAY, site, gateway)
    return accounts, passwords


def mqtt_login(service: str, username: str, passwords: dict[str, str]) -> dict[str, str]:
    """A child's broker account, as its environment variables (not in its config file)."""
    return {
        f"SITEWATCH_{service}_MQTT__USERNAME": username,
        f"SITEWATCH_{service}_MQTT__PASSWORD": passwords[username],
    }
