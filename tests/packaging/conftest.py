"""Fixtures for the Debian package: built once per session in a copy of the tree, installed on this machine, purged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.packaging.debian_tools import (
    APT_ENV, APT_TIMEOUT, BUILD_TIMEOUT, MARKER, PACKAGE, ROOT, as_root, package_installed, purge, run,
)


@pytest.fixture(scope="session")
def deb_file(tmp_path_factory) -> Path:
    """The .deb built by debian/build-deb (dpkg-buildpackage -us -uc -b in a copy of the tree)."""
    out = tmp_path_factory.mktemp("deb")
    env = {**os.environ, "TMPDIR": str(out)}
    for variable in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(variable, None)
    run([str(ROOT / "debian" / "build-deb"), str(out)], env=env, timeout=BUILD_TIMEOUT, cwd=ROOT)
    debs = sorted(out.glob(f"{PACKAGE}_*.deb"))
    assert len(debs) == 1, f"expected one {PACKAGE} .deb in {out}, found {debs}"
    return debs[0]


@pytest.fixture(scope="module")
def installed_deb(deb_file) -> Path:
    """The package installed with apt (as an operator would), purged again when the module's tests are done."""
    if package_installed():
        assert MARKER.exists(), (
            f"{PACKAGE} is already installed on this machine, not by these tests: they would purge it. "
            f"Remove it first (apt-get purge {PACKAGE}) or run them on a throwaway machine.")
        purge()
    run(as_root(["touch", str(MARKER)]))
    try:
        run(as_root(["apt-get", "install", "-y", "-q", str(deb_file)]),
            env=APT_ENV, timeout=APT_TIMEOUT)
        yield deb_file
    finally:
        if package_installed():
            purge()
        run(as_root(["rm", "-f", str(MARKER)]))
