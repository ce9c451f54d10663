"""What the .deb holds and declares (dpkg-deb -c, -I), and the build inputs it is made from."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tarfile

import pytest
from packaging.requirements import Requirement

from tests.packaging.debian_tools import PACKAGE, ROOT, run

pytestmark = pytest.mark.timeout(600)  # the first test to ask for the .deb pays for building it

VENV = "/opt/venvs/ocpp-gw"
SHIPPED_PATHS = [
    f"{VENV}/bin/ocpp-gw",
    f"{VENV}/pyvenv.cfg",
    f"{VENV}/share/ocpp-gw/schemas/BootNotification.json",
    f"{VENV}/share/ocpp-gw/schemas/BootNotificationResponse.json",
    f"{VENV}/share/ocpp-gw/schemas/ocpp2.0.1/BootNotificationRequest.json",
    f"{VENV}/share/ocpp-gw/schemas/ocpp2.0.1/BootNotificationResponse.json",
    f"{VENV}/share/ocpp-gw/schemas/ocpp2.1/BootNotificationRequest.json",
    f"{VENV}/share/ocpp-gw/schemas/ocpp2.1/NotifyPeriodicEventStream.json",
    "/usr/bin/ocpp-gw",
    "/lib/systemd/system/ocpp-gw.service",
    "/usr/lib/sysusers.d/ocpp-gw.conf",
    "/etc/ocpp_gw/ocpp.conf",
    "/etc/ocpp_gw/passwd",
    "/usr/share/doc/ocpp-gw/operations.md.gz",
]


@pytest.fixture(scope="module")
def payload(deb_file) -> tarfile.TarFile:
    tar_bytes = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb_file)], capture_output=True, check=True,
                               timeout=60).stdout
    return tarfile.open(fileobj=io.BytesIO(tar_bytes))


@pytest.fixture(scope="module")
def listing(deb_file) -> dict[str, str]:
    """Path → the `dpkg-deb -c` line for it."""
    lines = run(["dpkg-deb", "-c", str(deb_file)]).stdout.splitlines()
    by_path = {}
    for line in lines:
        path = line.split(None, 5)[5].split(" -> ")[0]
        by_path[path.removeprefix(".").rstrip("/") or "/"] = line
    return by_path


def field(deb_file, name: str) -> str:
    return run(["dpkg-deb", "-f", str(deb_file), name]).stdout.strip()


@pytest.mark.parametrize("path", SHIPPED_PATHS)
def test_deb_ships(listing, path):
    assert path in listing


def test_every_shipped_schema_is_in_the_venv_data_dir(listing):
    """Each version's schemas in its own directory: 1.6 at the top, 2.0.1 and 2.1 below it."""
    data_dir = f"{VENV}/share/ocpp-gw/schemas/"
    shipped = {p.removeprefix(data_dir) for p, line in listing.items()
               if p.startswith(data_dir) and line.startswith("-")}  # regular files, not directories
    assert shipped == {p.relative_to(ROOT / "schemas").as_posix() for p in (ROOT / "schemas").rglob("*.json")}


def test_shipped_oca_schemas_are_the_repository_files_byte_for_byte(payload):
    for version in ("ocpp2.0.1", "ocpp2.1"):
        for path in sorted((ROOT / "schemas" / version).glob("*.json")):
            shipped = payload.extractfile(f".{VENV}/share/ocpp-gw/schemas/{version}/{path.name}").read()
            assert shipped == path.read_bytes(), path


@pytest.fixture(scope="module")
def site_packages(listing) -> str:
    found = [p for p in listing if re.fullmatch(rf"{VENV}/lib/python3\.\d+/site-packages", p)]
    assert len(found) == 1, found
    return found[0]


def test_every_module_and_data_file_of_the_gateway_is_in_the_venv(listing, site_packages):
    site = site_packages
    wanted = {f"{site}/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "ocpp_gw").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")}
    assert sorted(wanted - set(listing)) == []


def test_usr_bin_command_links_to_the_venv_script(listing):
    assert listing["/usr/bin/ocpp-gw"].endswith(f"-> {VENV}/bin/ocpp-gw")


def test_venv_script_runs_the_venv_python(payload):
    script = payload.extractfile(f".{VENV}/bin/ocpp-gw").read().decode()
    assert script.splitlines()[0] == f"#!{VENV}/bin/python"


def test_venv_interpreter_is_debians_own(listing):
    python = [line for p, line in listing.items() if re.fullmatch(rf"{VENV}/bin/python3\.\d+", p)]
    assert len(python) == 1 and re.search(r"-> /usr/bin/python3\.\d+$", python[0]), python


def test_no_build_paths_leak_into_scripts_or_venv_config(payload):
    for name in (f".{VENV}/bin/ocpp-gw", f".{VENV}/bin/activate", f".{VENV}/pyvenv.cfg"):
        text = payload.extractfile(name).read().decode()
        assert "debian/ocpp-gw" not in text and "/tmp/" not in text, name


def test_byte_code_is_hash_checked_so_clamped_mtimes_never_make_it_stale(payload, site_packages, listing):
    cached = [p for p in listing if p.startswith(f"{site_packages}/ocpp_gw/__pycache__/cli.cpython-")]
    assert len(cached) == 1, cached
    pyc = payload.extractfile(f".{cached[0]}")
    flags = int.from_bytes(pyc.read(8)[4:8], "little")
    assert flags == 0b11  # hash-based, checked against the source


def test_shipped_config_is_the_repository_config(payload):
    assert payload.extractfile("./etc/ocpp_gw/ocpp.conf").read() == (ROOT / "etc" / "ocpp.conf").read_bytes()


def test_secrets_files_are_not_world_readable_and_credentials_start_empty(payload):
    config, passwd = payload.getmember("./etc/ocpp_gw/ocpp.conf"), payload.getmember("./etc/ocpp_gw/passwd")
    assert (config.mode, passwd.mode, passwd.size) == (0o640, 0o640, 0)


def test_conffiles_are_the_config_and_the_credentials(deb_file):
    conffiles = run(["dpkg-deb", "-I", str(deb_file), "conffiles"]).stdout.split()
    assert conffiles == ["/etc/ocpp_gw/ocpp.conf", "/etc/ocpp_gw/passwd"]


def test_sysusers_file_declares_the_system_user(payload):
    text = payload.extractfile("./usr/lib/sysusers.d/ocpp-gw.conf").read().decode()
    entries = [line.split()[:2] for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert entries == [["u", "ocpp-gw"]]


def test_control_names_package_and_version(deb_file):
    changelog_version = (ROOT / "debian" / "changelog").read_text().split("(", 1)[1].split(")", 1)[0]
    assert (field(deb_file, "Package"), field(deb_file, "Version")) == (PACKAGE, changelog_version)


def test_depends_on_the_interpreter_of_the_venv_and_sysusers(deb_file):
    depends = [d.strip() for d in field(deb_file, "Depends").split(",")]
    assert any(re.fullmatch(r"python3\.\d+", d) for d in depends), depends
    assert any("systemd" in d and "sysusers" in d for d in depends), depends
    assert not any("python3-" in d for d in depends), f"bundled dependencies must not come from Debian: {depends}"


def test_recommends_mosquitto(deb_file):
    assert field(deb_file, "Recommends") == "mosquitto"


# Build inputs: no .deb needed.

def install_requires() -> list[Requirement]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            return [Requirement(value) for value in ast.literal_eval(node.value)]
    raise AssertionError("setup.py has no install_requires")


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "debian" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"debian/requirements.txt: {line!r} is not pinned with =="
            found[canonical(name)] = version.strip()
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("requirement", install_requires(), ids=str)
def test_runtime_dependency_is_pinned_for_the_package_within_setup_py_range(requirement):
    pinned = pins()
    assert canonical(requirement.name) in pinned, f"{requirement.name} is not pinned in debian/requirements.txt"
    assert requirement.specifier.contains(pinned[canonical(requirement.name)])


def test_package_version_is_the_gateway_version():
    upstream = (ROOT / "debian" / "changelog").read_text().split("(", 1)[1].split("-", 1)[0]
    init = (ROOT / "ocpp_gw" / "__init__.py").read_text()
    assert f'__version__ = "{upstream}"' in init
