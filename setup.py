"""Packaging for ocpp_gw, the OCPP-J 1.6 to MQTT gateway."""

import glob
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    text = (HERE / "ocpp_gw" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


def read_readme() -> str:
    readme = HERE / "README.md"
    return readme.read_text(encoding="utf-8") if readme.exists() else ""


setup(
    name="ocpp-gw",
    version=read_version(),
    description="OCPP-J 1.6 charge points to MQTT: a gateway that keeps the protocol and holds no business logic",
    long_description=read_readme(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["ocpp_gw", "ocpp_gw.*"]),
    package_data={"ocpp_gw.admin.console": ["index.html", "console.js", "console.css"]},
    install_requires=[
        "simple-websocket>=1.0",
        "paho-mqtt>=2.0",
        "jsonschema>=4.18",
        "configobj>=5.0.8",
        # PROXY protocol v1/v2 headers from a load balancer (SPEC §10): a small, pure parser, MIT.
        "proxy-protocol>=0.11.3",
    ],
    extras_require={
        "test": [
            "pytest>=7.4",
            "pytest-timeout>=2.2",
            "freezegun>=1.4",
            "ocpp==2.1.0",  # schemas/ocpp2.* are byte-for-byte copies of this release's (schemas/README.md)
            "websockets>=13.0",
            "hypothesis>=6.90",
            "selenium==4.36.0",  # drives Debian's chromium through chromium-driver (tests/browser)
            "matplotlib>=3.7",  # tests/bench_tools check the plot that make bench draws
        ],
        # ocpp_gw.backend: serve a CSMS written with the PyPI `ocpp` library over the gateway's MQTT API
        # (the adapter raises websockets' ConnectionClosed, which ChargePoint.start() lets through).
        "backend": ["ocpp>=1.0", "websockets>=13.0"],
        # make bench only: --profile
        "bench": ["py-spy>=0.3"],
    },
    entry_points={"console_scripts": ["ocpp-gw = ocpp_gw.cli:main"]},
    data_files=[
        ("share/ocpp-gw/schemas", sorted(glob.glob("schemas/*.json"))),
        # The OCA's 2.x schemas, verbatim, one directory per version (schemas/README.md).
        ("share/ocpp-gw/schemas/ocpp2.0.1", sorted(glob.glob("schemas/ocpp2.0.1/*.json"))),
        ("share/ocpp-gw/schemas/ocpp2.1", sorted(glob.glob("schemas/ocpp2.1/*.json"))),
        ("share/ocpp-gw", glob.glob("etc/ocpp.conf")),
    ],
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: Communications",
    ],
)
