"""The ``ocpp-gw`` command: run the service, check a config file, manage credentials."""

from __future__ import annotations

import argparse
import sys

from . import __version__

DEFAULT_CONFIG = "/etc/ocpp_gw/ocpp.conf"
EXIT_CONFIG = 2
SUBCOMMANDS = """subcommands:
  ocpp-gw ctl [-c FILE] {clients,show,kick,stats}
                        talk to a running gateway through its admin API (ocpp-gw ctl --help)
  ocpp-gw passwd {add,remove,list} [--file FILE]
                        manage charge point credentials (ocpp-gw passwd --help)"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["passwd"]:
        from .auth import passwd_main
        return passwd_main(argv[1:])
    if argv[:1] == ["ctl"]:
        from .ctl import main as ctl_main
        return ctl_main(argv[1:])
    parser = argparse.ArgumentParser(prog="ocpp-gw", description="OCPP-J 1.6 to MQTT gateway",
                                     epilog=SUBCOMMANDS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", default=DEFAULT_CONFIG,
                        help=f"configuration file (default {DEFAULT_CONFIG})")
    parser.add_argument("--check-config", metavar="FILE",
                        help="validate FILE and exit: 0 when good, 2 with the problem")
    parser.add_argument("--version", action="version", version=f"ocpp-gw {__version__}")
    args = parser.parse_args(argv)

    from .settings import ConfigError, load
    path = args.check_config or args.config
    try:
        settings = load(path)
        if args.check_config:
            from .config import checker_config, version_policy
            from .service import make_checkers
            make_checkers(checker_config(settings), settings.source, version_policy(settings).served)
            print(f"{path}: OK")
            return 0
    except ConfigError as err:
        for error in err.all:  # every error of the file, not just the first
            print(f"ocpp-gw: {error.location()}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as err:  # StartupError from the checks above
        print(f"ocpp-gw: {err}", file=sys.stderr)
        return EXIT_CONFIG
    return _serve(settings)


def _serve(settings) -> int:
    from . import logs
    from .service import Service, StartupError
    logs.setup(settings["log.level"])
    try:
        service = Service(settings)
    except StartupError as err:
        print(f"ocpp-gw: {err}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        return service.run()
    except StartupError as err:
        print(f"ocpp-gw: {err}", file=sys.stderr)
        return EXIT_CONFIG
