"""compute_admin_commands: what a running pgBouncer is sent so that it runs the pool its ini gives (SET for a
size the [pgbouncer] section governs, RELOAD for one on the database's line), as a table."""

from __future__ import annotations

import pytest

from perfpilot.actuate.pgbouncer_ini import AdminCommands, compute_admin_commands
from perfpilot.api.status import PoolSize
from perfpilot.observe.workload import WorkloadSpecError


def _pool(size: int, reserve: int) -> PoolSize:
    return PoolSize(default_pool_size=size, reserve_pool_size=reserve)


GLOBAL = "[databases]\napp = host=db\n[pgbouncer]\ndefault_pool_size = 25\nreserve_pool_size = 4\n"
ON_LINE = "[databases]\napp = host=db pool_size=12 reserve_pool=3\n[pgbouncer]\ndefault_pool_size = 30\n"
SIZE_ON_LINE = "[databases]\napp = host=db pool_size=12\n[pgbouncer]\nreserve_pool_size = 4\n"
STAR_LINE = "[databases]\n* = host=db pool_size=9\n[pgbouncer]\nreserve_pool_size = 1\n"

# After a RELOAD, both [pgbouncer] sizes as the ConfigMap gives them (pgBouncer's 20 and 0 when not written).
RESET_30_0 = (("default_pool_size", 30), ("reserve_pool_size", 0))
RESET_20_4 = (("default_pool_size", 20), ("reserve_pool_size", 4))

# (ini, what pgBouncer shows, the commands)
CASES = {
    "in step: nothing sent": (GLOBAL, _pool(25, 4), AdminCommands()),
    "[pgbouncer] size behind: SET it alone": (
        GLOBAL, _pool(10, 4), AdminCommands(settings=(("default_pool_size", 25),))),
    "[pgbouncer] size and reserve behind: SET both": (
        GLOBAL, _pool(10, 2), AdminCommands(settings=(("default_pool_size", 25), ("reserve_pool_size", 4)))),
    "both on the database's line: RELOAD, then the shared sizes SET again": (
        ON_LINE, _pool(7, 3), AdminCommands(reload=True, settings=RESET_30_0)),
    "line size behind, [pgbouncer] reserve in step: RELOAD, then the reserve SET again": (
        SIZE_ON_LINE, _pool(7, 4), AdminCommands(reload=True, settings=RESET_20_4)),
    "line size in step, [pgbouncer] reserve behind: SET, no RELOAD": (
        SIZE_ON_LINE, _pool(12, 1), AdminCommands(settings=(("reserve_pool_size", 4),))),
    "the * line governs a database without its own": (
        STAR_LINE, _pool(20, 1), AdminCommands(reload=True, settings=(("default_pool_size", 20),
                                                                      ("reserve_pool_size", 1)))),
    "no row shown: the [pgbouncer] sizes SET, no RELOAD": (
        GLOBAL, None, AdminCommands(settings=(("default_pool_size", 25), ("reserve_pool_size", 4)))),
    "no row shown, sizes on the line: nothing can be sent": (ON_LINE, None, AdminCommands()),
    "defaults not written: pgBouncer's own (20, 0) SET": (
        "[databases]\napp = host=db\n[pgbouncer]\npool_mode = transaction\n", _pool(5, 1),
        AdminCommands(settings=(("default_pool_size", 20), ("reserve_pool_size", 0)))),
}


@pytest.mark.parametrize(("ini", "shown", "expected"), CASES.values(), ids=CASES.keys())
def test_what_differs_is_sent_by_the_only_command_that_reaches_it(ini: str, shown: PoolSize | None,
                                                                   expected: AdminCommands) -> None:
    assert compute_admin_commands(ini, database="app", shown=shown) == expected


def test_the_statements_reload_before_they_set() -> None:
    commands = AdminCommands(reload=True, settings=(("reserve_pool_size", 4), ("default_pool_size", 25)))
    assert commands.statements == ["RELOAD", "SET reserve_pool_size = 4", "SET default_pool_size = 25"]


def test_an_ini_the_reader_refuses_sends_nothing_and_says_where() -> None:
    with pytest.raises(WorkloadSpecError, match=r"ConfigMap/pgbouncer: \[pgbouncer\] default_pool_size.*'many'"):
        compute_admin_commands("[pgbouncer]\ndefault_pool_size = many\n", database="app", shown=_pool(1, 0),
                               where="ConfigMap/pgbouncer")


SUB_PATH_CASES = {
    "a line size behind: no RELOAD, which could only read the old file": (ON_LINE, _pool(7, 1), AdminCommands()),
    "a [pgbouncer] size behind: SET as usual": (
        SIZE_ON_LINE, _pool(12, 1), AdminCommands(settings=(("reserve_pool_size", 4),))),
}


@pytest.mark.parametrize(("ini", "shown", "expected"), SUB_PATH_CASES.values(), ids=SUB_PATH_CASES.keys())
def test_a_file_the_kubelet_never_updates_gets_no_reload(ini: str, shown: PoolSize, expected: AdminCommands) -> None:
    assert compute_admin_commands(ini, database="app", shown=shown, file_follows=False) == expected
