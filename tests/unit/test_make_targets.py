"""What the README says the make targets install is what the Makefile installs, `make test-fast` runs the fast
tiers only and installs nothing the slow tiers alone need, and every folder of tests/ is a known tier whose markers
pytest knows."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.conftest import FAST_TIERS, SLOW_TIERS

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
SLOW_ONLY_PACKAGES = {"chromium", "chromium-driver", "haproxy", "rabbitmq-server"}


def make_variable(name: str) -> str:
    """The value of `NAME := ...` with $(OTHER) references expanded."""
    match = re.search(rf"^{name}\s*:?=\s*(.*)$", MAKEFILE, re.M)
    assert match, f"the Makefile defines no {name}"
    return re.sub(r"\$\((\w+)\)", lambda ref: make_variable(ref.group(1)), match.group(1)).strip()


def debian_packages(name: str) -> set[str]:
    """The Debian packages of a "command:package" list."""
    return {pair.split(":", 1)[1] for pair in make_variable(name).split()}


def rule(target: str) -> tuple[list[str], str]:
    """(prerequisites, recipe) of a target."""
    match = re.search(rf"^{re.escape(target)}:([^\n]*)\n((?:\t[^\n]*\n)*)", MAKEFILE, re.M)
    assert match, f"the Makefile has no target {target}"
    return match.group(1).split(), match.group(2)


def readme_item(target: str) -> str:
    """The README's bullet that says what `make <target>` installs."""
    match = re.search(rf"^- `make {re.escape(target)}`:(.*?)(?=^- |^$)", README, re.M | re.S)
    assert match, f"the README does not say what `make {target}` installs"
    return " ".join(match.group(1).split())


def named(package: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(package)}(?![\w-])", text) is not None


@pytest.mark.parametrize("target, installs, on_top_of", [
    ("run", "RUN_DEPS", None),
    ("test-fast", "FAST_DEPS", "RUN_DEPS"),
    ("test", "TEST_DEPS", "FAST_DEPS"),
])
def test_the_readme_names_every_debian_package_a_target_installs(target, installs, on_top_of):
    added = debian_packages(installs) - (debian_packages(on_top_of) if on_top_of else set())
    item = readme_item(target)
    assert [package for package in sorted(added) if not named(package, item)] == []


def test_the_targets_install_what_their_readme_item_says():
    prerequisites = {target: rule(target)[0] for target in ("run", "test-fast", "test")}
    assert "deps-run" in prerequisites["run"]
    assert "deps-fast" in prerequisites["test-fast"]
    assert {"deps-test", "deps-deb"} <= set(prerequisites["test"])
    assert make_variable("DEPS_fast") == make_variable("FAST_DEPS")
    assert make_variable("DEPS_test") == make_variable("TEST_DEPS")


def test_make_test_says_up_front_that_it_installs_the_deb_and_creates_a_system_user():
    item = readme_item("test")
    assert ".deb" in item and "install it on this machine" in item and "`ocpp-gw` system user" in item
    assert "build-dep" in item


def test_make_test_fast_runs_the_fast_tiers_without_what_only_slow_tiers_need():
    prerequisites, recipe = rule("test-fast")
    assert re.search(r"-m pytest\b.*-m \"not slow\"", recipe), recipe
    assert not {"deps-test", "deps-deb", "deps-browser"} & set(prerequisites)
    assert debian_packages("FAST_DEPS") & SLOW_ONLY_PACKAGES == set()
    assert SLOW_ONLY_PACKAGES <= debian_packages("TEST_DEPS")


def test_make_test_runs_every_tier():
    _, recipe = rule("test")
    assert re.search(r"-m pytest -q\s*$", recipe, re.M), recipe


def test_every_folder_of_tests_is_a_tier_and_every_slow_tier_has_a_registered_marker():
    folders = {path.parent.relative_to(ROOT / "tests").parts[0] for path in (ROOT / "tests").rglob("test_*.py")
               if "node_modules" not in path.parts}
    assert folders == set(FAST_TIERS) | set(SLOW_TIERS)
    assert not set(FAST_TIERS) & set(SLOW_TIERS)
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    registered = {line.split(":", 1)[0] for line in options["markers"]}
    assert {"slow", *SLOW_TIERS} <= registered
    assert "--strict-markers" in options["addopts"]
