"""pgbouncer.ini read by perfpilot and by a real pgBouncer: the same pool sizes, or both refuse the file.

Each case starts pgBouncer (the Debian package, ``pgbouncer_harness``) on the ini, with the listen and admin
settings it needs added to its ``[pgbouncer]`` section (last in every case), and reads the sizes it applies to
database ``app`` from the admin console's ``SHOW DATABASES``; ``parse_pgbouncer_ini`` must give the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pgbouncer_harness import pgbouncer_folder, running_pgbouncer

from perfpilot.observe.workload import WorkloadSpecError, parse_pgbouncer_ini

pytestmark = pytest.mark.integration


@pytest.fixture
def folder() -> Iterator[Path]:
    with pgbouncer_folder() as path:
        yield path


def _pgbouncer_sizes(folder: Path, ini: str) -> tuple[int, int] | str:
    """The (pool size, reserve) pgBouncer applies to ``app`` with this ini, or its log when it refuses it."""
    with running_pgbouncer(folder, ini) as pgbouncer:
        return pgbouncer if isinstance(pgbouncer, str) else pgbouncer.pool_sizes("app")


@pytest.mark.parametrize("ini", [
    "[databases]\napp = host=db pool_size = 50\n",  # spaces around = in a connection string
    "[databases]\napp = host=db password='x pool_size=1' pool_size=9\n",  # a quoted value holding a setting
    "[databases]\napp = host=db password='it''s pool_size=1' pool_size=5\n",  # '' inside quotes
    "[databases]\napp = host=db pool_size='30'\n",  # a number in quotes on a database line
    "[databases]\napp = host=db pool_size=7 reserve_pool=1\n[pgbouncer]\ndefault_pool_size = 30\n",
    "[pgbouncer]\nlisten_port = 6432\n    default_pool_size = 30\n",  # an indented line is a line
    "; sizes\n[pgbouncer]\n# old\ndefault_pool_size = 10\ndefault_pool_size = 12\n",  # comments, later wins
    "[pgbouncer] ; main\ndefault_pool_size = 14\n",  # a comment after a section header
    "[pgbouncer]\ndefault_pool_size = 010\nreserve_pool_size = 0x1A\n",  # strtol base 0: octal, hex
    "[pgbouncer]\ndefault_pool_size = +12\nreserve_pool_size = 0\n",
    "[databases]\napp = host=db pool_size=010\n[pgbouncer]\ndefault_pool_size = 010\n",  # atoi on the line
    "[pgbouncer]\nreserve_pool_size = 3\n",  # the defaults: 20 and the reserve given
    "[pgbouncer]\ndefault_pool_size = 2147483647\n",  # the largest a C int holds
    # only a space separates a connection string's pairs: after a tab, the rest is the value before it
    "[databases]\napp = host=db\tpool_size=7\n",
    # a second [pgbouncer] section starts again from the defaults; a [databases] one adds to the first
    "[pgbouncer]\ndefault_pool_size = 12\n[databases]\napp = host=db\n[pgbouncer]\nreserve_pool_size = 2\n",
])
def test_perfpilot_reads_the_pool_sizes_pgbouncer_applies(folder: Path, ini: str) -> None:
    applied = _pgbouncer_sizes(folder, ini)
    assert not isinstance(applied, str), applied
    pool = parse_pgbouncer_ini(ini, database="app")
    assert (pool.default_pool_size, pool.reserve_pool_size) == applied


@pytest.mark.parametrize("ini", [
    "[PgBouncer]\ndefault_pool_size = 8\n",
    "[pgbouncer]\nDefault_Pool_Size = 8\n",
    "[databases]\napp = host=db Pool_Size=7\n",
])
def test_a_name_in_other_case_is_refused_as_pgbouncer_refuses_it(folder: Path, ini: str) -> None:
    # Read regardless of case, these gave sizes pgBouncer never applies: it will not start on the file.
    assert isinstance(_pgbouncer_sizes(folder, ini), str)
    with pytest.raises(WorkloadSpecError, match="pgBouncer reads names as written and refuses"):
        parse_pgbouncer_ini(ini, database="app")


@pytest.mark.parametrize("ini", [
    "[pgbouncer]\nreserve_pool_size = 08\n",  # no octal number
    "[pgbouncer]\ndefault_pool_size = '30'\n",  # quotes are no part of a [pgbouncer] value
    "[pgbouncer]\ndefault_pool_size = many\n",
])
def test_an_ini_pgbouncer_refuses_is_refused_with_the_setting_named(folder: Path, ini: str) -> None:
    refused = _pgbouncer_sizes(folder, ini)
    assert isinstance(refused, str) and "invalid value" in refused
    setting = ini.split("\n")[1].split("=", maxsplit=1)[0].strip()
    with pytest.raises(WorkloadSpecError, match=rf"\[pgbouncer\] {setting}: expected a whole number"):
        parse_pgbouncer_ini(ini, database="app")
