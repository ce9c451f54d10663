"""`ocpp-gw passwd add|remove|list`: manage the credentials file from the shell."""

from __future__ import annotations

import argparse
import getpass
import sys
from ..protocol.identity import cid_problem
from .credentials_file import DEFAULT_FILE, PROFILES, CredentialsError, add_user, load_credentials, remove_user
from .passwords import generate_password


def passwd_main(argv: list[str]) -> int:
    """`ocpp-gw passwd add|remove|list`. Exit 0 ok, 1 cid not found on remove, 2 usage or file error."""
    parser = _passwd_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return args.run(args)
    except (CredentialsError, ValueError, OSError) as error:
        print(f"ocpp-gw passwd: error: {error}", file=sys.stderr)
        return 2


def _passwd_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocpp-gw passwd", description="Manage the charge point credentials file.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{add,remove,list}")

    add = commands.add_parser("add", help="add a charge point or set its password")
    add.add_argument("cid")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.add_argument("--profile", type=int, choices=PROFILES, help="OCPP security profile (default 1)")
    add.add_argument("--versions", metavar="LIST",
                     help="OCPP versions the charge point may use, e.g. ocpp1.6 or ocpp2.0.1,ocpp1.6; "
                          "'any' lifts the restriction (default: keep it; none for a new charge point)")
    add.set_defaults(run=_passwd_add)

    remove = commands.add_parser("remove", help="remove a charge point")
    remove.add_argument("cid")
    remove.set_defaults(run=_passwd_remove)

    list_ = commands.add_parser("list", help="list the charge point ids (never the hashes)")
    list_.set_defaults(run=_passwd_list)

    for command in (add, remove, list_):
        command.add_argument("--file", default=DEFAULT_FILE, help=f"credentials file (default {DEFAULT_FILE})")
    return parser


def _passwd_add(args: argparse.Namespace) -> int:
    problem = cid_problem(args.cid)
    if problem:
        raise ValueError(problem)
    generated = False
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ValueError("no password on stdin")
    elif sys.stdin.isatty():
        try:
            password = getpass.getpass(f"New password for {args.cid}: ")
            again = getpass.getpass("Repeat it: ")
        except (EOFError, KeyboardInterrupt):
            raise ValueError("aborted") from None
        if password != again:
            raise ValueError("the passwords do not match")
        if not password:
            raise ValueError("empty password")
    else:
        password = generate_password()
        generated = True
    replaced = add_user(args.file, args.cid, password, args.profile, args.versions)
    if generated:
        print(password)
    print(f"{'updated' if replaced else 'added'} {args.cid} in {args.file}; reload ocpp-gw (SIGHUP) to apply",
          file=sys.stderr)
    return 0


def _passwd_remove(args: argparse.Namespace) -> int:
    if not remove_user(args.file, args.cid):
        print(f"ocpp-gw passwd: {args.cid} not found in {args.file}", file=sys.stderr)
        return 1
    print(f"removed {args.cid} from {args.file}; reload ocpp-gw (SIGHUP) to apply", file=sys.stderr)
    return 0


def _passwd_list(args: argparse.Namespace) -> int:
    for cid in sorted(load_credentials(args.file)):
        print(cid)
    return 0
