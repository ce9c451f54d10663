"""Who made a secret decides its hash (docs/security.md, "Password hashes"); old files keep working;
`ocpp-gw passwd import` onboards many charge points in one atomic write."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from ocpp_gw.auth import FileBackend, load_credentials, passwd_main, scheme_of, verify
from ocpp_gw.auth import credentials_file, passwords

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "credentials"
OLD_FILE = FIXTURES / "passwd-written-before-machine-made-hashes"
# The passwords the fixture was written with (tests/data/credentials/README.md).
OLD_PASSWORDS = {"CP-OLD-1": "operator chosen pw 1", "CP-OLD-2": "Tr0ub4dor&3:with:colons",
                 "CP-OLD-3": "aUhTDgfuXHVzvsK-agOl5VfS"}
CSMS_KEY = "0123456789abcdef0123456789abcdef01234567"  # a 1.6 AuthorizationKey: 20 bytes as 40 hex digits


class TtyInput(io.StringIO):
    def isatty(self) -> bool:
        return True


def stored_scheme(path: Path, cid: str) -> str | None:
    return scheme_of(load_credentials(str(path))[cid].password_hash)


# files written before the change


def test_a_file_written_by_the_previous_passwd_still_authenticates_every_charge_point(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    shutil.copy(OLD_FILE, path)
    backend = FileBackend(str(path))
    for cid, password in OLD_PASSWORDS.items():
        assert backend.authenticate(cid, password), cid
        assert not backend.authenticate(cid, password + "x"), cid
    assert backend.profile("CP-OLD-2") == 2


def test_lines_written_before_the_change_stay_scrypt_when_another_line_is_added(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    shutil.copy(OLD_FILE, path)
    credentials_file.add_user(str(path), "CP-NEW", passwords.generate_password(), machine_made=True)
    assert [stored_scheme(path, cid) for cid in OLD_PASSWORDS] == ["scrypt"] * 3
    assert FileBackend(str(path)).authenticate("CP-OLD-1", OLD_PASSWORDS["CP-OLD-1"])


# the scheme of each kind of secret


def test_a_password_typed_at_the_terminal_is_stored_with_scrypt(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "passwd"
    monkeypatch.setattr("sys.stdin", TtyInput())
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "a person's choice")
    assert passwd_main(["add", "CP001", "--file", str(path)]) == 0
    assert stored_scheme(path, "CP001") == "scrypt"


def test_a_password_given_on_stdin_is_stored_with_scrypt(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "passwd"
    monkeypatch.setattr("sys.stdin", io.StringIO("0123456789abcdefghijklmnopqrstuv\n"))
    assert passwd_main(["add", "CP001", "--password-stdin", "--file", str(path)]) == 0
    assert stored_scheme(path, "CP001") == "scrypt"


@pytest.mark.parametrize("argv, stdin", [(["--generate"], TtyInput()), ([], io.StringIO(""))],
                         ids=["--generate", "stdin not a terminal"])
def test_a_generated_password_is_stored_with_the_machine_made_scheme(tmp_path: Path, monkeypatch, capsys,
                                                                     argv, stdin) -> None:
    path = tmp_path / "passwd"
    monkeypatch.setattr("sys.stdin", stdin)
    assert passwd_main(["add", "CP001", *argv, "--file", str(path)]) == 0
    printed = capsys.readouterr().out.strip()
    assert stored_scheme(path, "CP001") == "hmac-sha256"
    assert FileBackend(str(path)).authenticate("CP001", printed)


def test_a_csms_key_given_as_machine_made_gets_the_machine_made_scheme(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "passwd"
    monkeypatch.setattr("sys.stdin", io.StringIO(CSMS_KEY + "\n"))
    assert passwd_main(["add", "CP001", "--password-stdin", "--machine-made", "--file", str(path)]) == 0
    assert stored_scheme(path, "CP001") == "hmac-sha256"
    assert FileBackend(str(path)).authenticate("CP001", CSMS_KEY)


def test_a_short_secret_is_refused_as_machine_made_and_nothing_is_written(tmp_path: Path, monkeypatch,
                                                                          capsys) -> None:
    path = tmp_path / "passwd"
    monkeypatch.setattr("sys.stdin", io.StringIO("fifteen-chars-x\n"))
    assert passwd_main(["add", "CP001", "--password-stdin", "--machine-made", "--file", str(path)]) == 2
    assert "at least 16 characters" in capsys.readouterr().err
    assert not path.exists()


def test_the_scheme_is_never_guessed_from_the_password_at_login() -> None:
    long_random = passwords.generate_password()
    assert scheme_of(passwords.hash_password(long_random)) == "scrypt"
    assert scheme_of(passwords.hash_machine_made(long_random)) == "hmac-sha256"


def test_machine_made_hash_is_salted_and_never_contains_the_secret_or_a_colon() -> None:
    first, second = passwords.hash_machine_made(CSMS_KEY), passwords.hash_machine_made(CSMS_KEY)
    assert first != second
    for stored in (first, second):
        assert CSMS_KEY not in stored and ":" not in stored
        assert verify(stored, CSMS_KEY) and not verify(stored, CSMS_KEY[:-1])


def test_machine_made_check_does_not_take_a_kdf_slot(monkeypatch) -> None:
    stored = passwords.hash_machine_made(CSMS_KEY)
    monkeypatch.setattr(passwords, "_scrypt", lambda *args: pytest.fail("scrypt ran for a machine-made secret"))
    assert verify(stored, CSMS_KEY)


@pytest.mark.parametrize("stored", [
    "hmac-sha256$$" + "A" * 44, "hmac-sha256$c2FsdA==$c2hvcnQ=", "hmac-sha256$c2FsdA==", "hmac-sha256$!!$!!",
], ids=["no salt", "short digest", "no digest", "not base64"])
def test_an_unreadable_machine_made_hash_is_a_bad_line_and_never_verifies(tmp_path: Path, stored: str) -> None:
    assert not verify(stored, CSMS_KEY)
    path = tmp_path / "passwd"
    path.write_text(f"CP001:{stored}\n")
    with pytest.raises(credentials_file.CredentialsError, match=r"passwd:1: unrecognised password hash"):
        load_credentials(str(path))


# passwd import


def import_lines(count: int, start: int = 0) -> str:
    return "".join(f"CP{i:04d}:{passwords.generate_password()}\n" for i in range(start, start + count))


def passwords_of(text: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_import_from_stdin_adds_every_line_in_one_write(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "passwd"
    text = "# depot 7\n\n" + import_lines(20)
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    writes = []
    real_write = credentials_file._write_atomically
    monkeypatch.setattr(credentials_file, "_write_atomically", lambda *a: (writes.append(a), real_write(*a)))
    assert passwd_main(["import", "--machine-made", "--file", str(path)]) == 0
    assert len(writes) == 1
    assert "20 added, 0 updated" in capsys.readouterr().err
    backend = FileBackend(str(path))
    for cid, password in passwords_of(text).items():
        assert backend.authenticate(cid, password)
        assert stored_scheme(path, cid) == "hmac-sha256"


def test_import_from_a_file_without_the_flag_stores_scrypt(tmp_path: Path) -> None:
    source, path = tmp_path / "depot.txt", tmp_path / "passwd"
    source.write_text("CP1:first person's password\nCP2:second: with a colon\n")
    assert passwd_main(["import", str(source), "--profile", "2", "--file", str(path)]) == 0
    backend = FileBackend(str(path))
    assert backend.authenticate("CP1", "first person's password")
    assert backend.authenticate("CP2", "second: with a colon")
    assert {cid: stored_scheme(path, cid) for cid in ("CP1", "CP2")} == {"CP1": "scrypt", "CP2": "scrypt"}
    assert backend.profile("CP1") == 2


def test_import_replaces_existing_charge_points_and_keeps_their_profile(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "passwd"
    shutil.copy(OLD_FILE, path)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"CP-OLD-2:{CSMS_KEY}\nCP-NEW:{CSMS_KEY[::-1]}\n"))
    assert passwd_main(["import", "--machine-made", "--file", str(path)]) == 0
    backend = FileBackend(str(path))
    assert backend.authenticate("CP-OLD-2", CSMS_KEY) and not backend.authenticate("CP-OLD-2", OLD_PASSWORDS["CP-OLD-2"])
    assert backend.profile("CP-OLD-2") == 2
    assert backend.authenticate("CP-OLD-1", OLD_PASSWORDS["CP-OLD-1"])
    assert backend.cids() == ["CP-NEW", "CP-OLD-1", "CP-OLD-2", "CP-OLD-3"]


def test_import_reports_every_bad_line_by_number_and_writes_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "passwd"
    shutil.copy(OLD_FILE, path)
    before = path.read_bytes()
    text = (f"CP1:{CSMS_KEY}\n"           # 1 fine
            "no colon-secret-here\n"       # 2
            f"CP/2:{CSMS_KEY}\n"           # 3 bad cid
            "CP3:\n"                       # 4 empty password
            "CP4:short-secret\n"           # 5 too short for --machine-made
            f"CP1:{CSMS_KEY}\n")           # 6 duplicate
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    assert passwd_main(["import", "--machine-made", "--file", str(path)]) == 2
    err = capsys.readouterr().err
    for number, words in [(2, "expected cid:password"), (3, "cid must not contain '/'"), (4, "empty password"),
                          (5, "a machine-made secret has at least 16 characters"), (6, "duplicate cid 'CP1' (first on line 1)")]:
        assert f"<stdin>:{number}: {words}" in err
    assert "<stdin>:1:" not in err
    assert CSMS_KEY not in err and "short-secret" not in err and "colon-secret" not in err
    assert path.read_bytes() == before


def test_import_that_fails_while_writing_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "passwd"
    shutil.copy(OLD_FILE, path)
    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    monkeypatch.setattr("sys.stdin", io.StringIO(import_lines(5)))
    assert passwd_main(["import", "--machine-made", "--file", str(path)]) == 2
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]


def test_import_of_nothing_is_an_error(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("# only a comment\n"))
    assert passwd_main(["import", "--file", str(tmp_path / "passwd")]) == 2
    assert "no cid:password lines" in capsys.readouterr().err
    assert not (tmp_path / "passwd").exists()
