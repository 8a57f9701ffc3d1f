"""Teardown accounting against the emulator's account ledger (``GET /_emulator/ledger``).

A scenario reads the ledger of one provider before it creates anything and after it has torn everything down;
whatever the account holds afterwards that it did not hold before is a leftover (billed or merely kept, such as
a startup script or an empty project). Each scenario records itself and its leftovers in the figures table.
"""

from __future__ import annotations

from typing import Any

from gpucloud.emulator import EmulatorServer
from gpucloud.emulator.client import read_ledger
from tests import figures

Item = dict[str, Any]


def holdings(emulator: EmulatorServer, provider: str) -> list[Item]:
    items: list[Item] = read_ledger(emulator.url, provider, headers=emulator.control_headers)[provider]["items"]
    return items


def leftovers(before: list[Item], after: list[Item]) -> list[Item]:
    """New items, except deleted ones the provider holds for recovery and purges by itself (DataCrunch's trash)."""
    known = {(i["kind"], i["id"]) for i in before}
    return [i for i in after if (i["kind"], i["id"]) not in known and not i["purged_by_provider"]]


def settle(emulator: EmulatorServer, provider: str, before: list[Item], after: list[Item] | None = None) -> list[Item]:
    """Record one teardown scenario and return its leftovers (the test asserts there are none). ``after``: the
    ledger's items as read at the scenario's end, when that was not now (e.g. mid-play, by the play itself)."""
    left = leftovers(before, holdings(emulator, provider) if after is None else after)
    figures.record("teardown scenarios")
    figures.record("leftovers after teardown", len(left))
    return left
