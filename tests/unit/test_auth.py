"""Credentials file, password hashing, the none backend and `ocpp-gw passwd` (SPEC §3)."""

from __future__ import annotations

import base64
import getpass
import hashlib
import io
import logging
import os
import stat
import string
from pathlib import Path

import pytest

from ocpp_gw import auth
from ocpp_gw.auth import credentials_file, passwords
from ocpp_gw.auth import (
    CredentialsError,
    FileBackend,
    NoAuth,
    add_user,
    generate_password,
    hash_password,
    passwd_main,
    remove_user,
    verify,
)
from ocpp_gw.protocol.handshake import Refusal, authorize, parse_request

URL_SAFE = set(string.ascii_letters + string.digits + "-_")


@pytest.fixture(scope="module")
def cp001_hash() -> str:
    return hash_password("s3cret-pass")


@pytest.fixture
def passwd_file(tmp_path: Path, cp001_hash: str) -> Path:
    path = tmp_path / "passwd"
    path.write_text(f"# charge points\n\nCP001:{cp001_hash}\nCP002:{cp001_hash}:2\n")
    return path


class TtyInput(io.StringIO):
    def isatty(self) -> bool:
        return True


def scrypt_hash(password: str, n: int, r: int, p: int, salt: bytes = b"0123456789abcdef") -> str:
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


# hashing


def test_hash_is_self_describing_scrypt(cp001_hash: str) -> None:
    kind, n, r, p, salt, digest = cp001_hash.split("$")
    assert (kind, n, r, p) == ("scrypt", "8192", "8", "1")
    assert len(base64.b64decode(salt)) == 16
    assert len(base64.b64decode(digest)) == 32


def test_same_password_hashes_differently_each_time() -> None:
    assert hash_password("pw") != hash_password("pw")


def test_hash_never_contains_the_field_separator_or_the_password(cp001_hash: str) -> None:
    assert ":" not in cp001_hash
    assert "s3cret" not in cp001_hash


def test_verify_accepts_the_right_password(cp001_hash: str) -> None:
    assert verify(cp001_hash, "s3cret-pass")


@pytest.mark.parametrize("wrong", ["", "s3cret-pas", "s3cret-pass ", "S3CRET-PASS", "s3cret-pass\n"])
def test_verify_refuses_a_wrong_password(cp001_hash: str, wrong: str) -> None:
    assert not verify(cp001_hash, wrong)


def test_verify_uses_the_parameters_in_the_hash() -> None:
    assert verify(scrypt_hash("pw", 1024, 4, 2), "pw")


def test_non_ascii_password_round_trips() -> None:
    assert verify(hash_password("pässwörd€"), "pässwörd€")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "s3cret-pass",
        "$2b$12$abcdefghijklmnopqrstuv",
        "scrypt$8192$8$1$c2FsdA==",
        "scrypt$8192$8$1$c2FsdA==$ZGlnZXN0ZGlnZXN0ZGlnZXN0$extra",
        "scrypt$1000$8$1$c2FsdA==$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "scrypt$1$8$1$c2FsdA==$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "scrypt$8192$0$1$c2FsdA==$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "scrypt$8192$8$0$c2FsdA==$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "scrypt$1048576$64$1$c2FsdA==$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "scrypt$-8192$8$1$c2FsdA==$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "scrypt$8192$8$1$***$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "scrypt$8192$8$1$$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
        "scrypt$8192$8$1$c2FsdA==$c2hvcnQ=",
        "bcrypt$8192$8$1$c2FsdA==$ZGlnZXN0ZGlnZXN0ZGlnZXN0",
    ],
)
def test_verify_refuses_an_unreadable_hash(stored: str) -> None:
    assert not verify(stored, "s3cret-pass")


def test_password_bytes_that_are_not_utf8_round_trip() -> None:
    assert verify(hash_password("\udcff\udc80"), "\udcff\udc80")
    assert not verify(hash_password("\udcff"), "\udcfe")


def test_password_with_a_stray_surrogate_does_not_raise() -> None:
    assert verify(hash_password("a\ud800"), "a\ud800")


def test_generated_passwords_are_long_url_safe_and_distinct() -> None:
    passwords = {generate_password() for _ in range(20)}
    assert len(passwords) == 20
    for password in passwords:
        assert len(password) >= 20
        assert set(password) <= URL_SAFE


# FileBackend


def test_file_backend_authenticates_the_right_password(passwd_file: Path) -> None:
    assert FileBackend(str(passwd_file)).authenticate("CP001", "s3cret-pass")


def test_file_backend_refuses_a_wrong_password(passwd_file: Path) -> None:
    assert not FileBackend(str(passwd_file)).authenticate("CP001", "wrong")


def test_file_backend_refuses_an_unknown_user(passwd_file: Path) -> None:
    assert not FileBackend(str(passwd_file)).authenticate("CP999", "s3cret-pass")


@pytest.mark.parametrize("username", ["CP001", "CP999"])
def test_known_and_unknown_users_cost_one_kdf_run_each(passwd_file: Path, monkeypatch, username: str) -> None:
    backend = FileBackend(str(passwd_file))
    runs = []
    real_scrypt = passwords._scrypt
    monkeypatch.setattr(passwords, "_scrypt", lambda *args: runs.append(args) or real_scrypt(*args))
    backend.authenticate(username, "wrong")
    assert len(runs) == 1


def test_a_file_backend_starts_without_running_the_kdf(passwd_file: Path, monkeypatch) -> None:
    # Every gateway start (and every test gateway) would pay one scrypt run, ~20-130 ms of CPU.
    runs = []
    monkeypatch.setattr(passwords, "_scrypt", lambda *args: runs.append(args))
    FileBackend(str(passwd_file))
    assert runs == []


def test_the_decoy_hash_has_the_cost_and_shape_of_a_real_one_and_matches_nothing() -> None:
    decoy, real = passwords.parse_hash(passwords.decoy_hash()), passwords.parse_hash(hash_password("x"))
    assert (decoy.n, decoy.r, decoy.p, len(decoy.salt), len(decoy.digest)) == \
        (real.n, real.r, real.p, len(real.salt), len(real.digest))
    assert decoy.salt != real.salt
    assert not verify(passwords.decoy_hash(), "")


def test_file_backend_takes_keyword_cid_and_peer(passwd_file: Path) -> None:
    backend = FileBackend(str(passwd_file))
    assert backend.requires_credentials
    assert backend.authenticate("CP001", "s3cret-pass", cid="CP001", peer="192.0.2.1:4000")


def test_profile_defaults_to_1_and_reads_the_third_field(passwd_file: Path) -> None:
    backend = FileBackend(str(passwd_file))
    assert backend.profile("CP001") == 1
    assert backend.profile("CP002") == 2
    assert backend.profile("CP999") is None


def test_cids_lists_every_entry_sorted(tmp_path: Path, cp001_hash: str) -> None:
    path = tmp_path / "passwd"
    path.write_text(f"CP-B:{cp001_hash}\r\n  # indented comment\r\n   \r\nCP-A:{cp001_hash}:3\r\n")
    assert FileBackend(str(path)).cids() == ["CP-A", "CP-B"]


def test_byte_order_mark_is_not_part_of_the_first_cid(tmp_path: Path, cp001_hash: str) -> None:
    path = tmp_path / "passwd"
    path.write_bytes(f"\ufeffCP001:{cp001_hash}\n".encode())
    assert FileBackend(str(path)).cids() == ["CP001"]


def test_empty_file_lets_nobody_in(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("# nobody yet\n")
    backend = FileBackend(str(path))
    assert backend.cids() == []
    assert not backend.authenticate("CP001", "")


def test_missing_file_at_start_is_an_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    with pytest.raises(CredentialsError, match=str(path)):
        FileBackend(str(path))


def test_world_readable_file_is_warned_about(passwd_file: Path, caplog) -> None:
    passwd_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="ocpp_gw.auth"):
        FileBackend(str(passwd_file))
    assert "readable by every user" in caplog.text


def test_reload_picks_up_a_changed_file(passwd_file: Path, cp001_hash: str) -> None:
    backend = FileBackend(str(passwd_file))
    passwd_file.write_text(f"CP003:{cp001_hash}\n")
    backend.reload()
    assert backend.cids() == ["CP003"]
    assert not backend.authenticate("CP001", "s3cret-pass")
    assert backend.authenticate("CP003", "s3cret-pass")


BAD_FILES = [
    ("CP003\n", 1, "expected cid:hash"),
    ("# ok\nCP003:{hash}:1:ocpp1.6:extra\n", 2, "expected cid:hash"),
    ("# ok\nCP003:{hash}:1:extra\n", 2, "unknown OCPP version 'extra'"),
    ("CP003:{hash}:1:ocpp1.6,ocpp1.6\n", 1, "named twice"),
    ("CP003:{hash}:1:\n", 1, "names no version"),
    ("CP003:{hash}\nCP+4:{hash}\n", 2, "'+'"),
    ("CP003:{hash}\n:{hash}\n", 2, "empty"),
    ("CP003:plain-text-password\n", 1, "unrecognised password hash"),
    ("CP003:{hash}:4\n", 1, "profile"),
    ("CP003:{hash}:\n", 1, "profile"),
    ("\n\nCP003:{hash}\nCP003:{hash}:2\n", 4, "duplicate cid 'CP003' (first on line 3)"),
]


@pytest.mark.parametrize(("content", "line", "message"), BAD_FILES)
def test_bad_line_is_an_error_naming_file_and_line(tmp_path: Path, cp001_hash, content, line, message) -> None:
    path = tmp_path / "passwd"
    path.write_text(content.format(hash=cp001_hash))
    with pytest.raises(CredentialsError) as raised:
        FileBackend(str(path))
    assert str(raised.value).startswith(f"{path}:{line}: ")
    assert message in str(raised.value)


@pytest.mark.parametrize(("content", "line", "message"), BAD_FILES)
def test_reload_of_a_bad_file_keeps_the_old_table(passwd_file: Path, cp001_hash, content, line, message) -> None:
    backend = FileBackend(str(passwd_file))
    passwd_file.write_text(content.format(hash=cp001_hash))
    with pytest.raises(CredentialsError, match=f":{line}: "):
        backend.reload()
    assert backend.cids() == ["CP001", "CP002"]
    assert backend.authenticate("CP001", "s3cret-pass")


def test_reload_of_a_vanished_file_keeps_the_old_table(passwd_file: Path) -> None:
    backend = FileBackend(str(passwd_file))
    passwd_file.unlink()
    with pytest.raises(CredentialsError, match="not found"):
        backend.reload()
    assert backend.authenticate("CP001", "s3cret-pass")


def test_error_for_a_clear_text_password_line_does_not_echo_it(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text("CP003:hunter2-in-clear\n")
    with pytest.raises(CredentialsError) as raised:
        FileBackend(str(path))
    assert "hunter2" not in str(raised.value)


def test_file_backend_drives_authorize(passwd_file: Path) -> None:
    backend = FileBackend(str(passwd_file))

    def request(cid: str, user: str, password: str):
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        raw = (
            f"GET /ocpp/{cid} HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: ocpp1.6\r\nAuthorization: Basic {token}\r\n\r\n"
        ).encode()
        return parse_request(raw, path_prefix="/ocpp")

    assert authorize(request("CP001", "CP001", "s3cret-pass"), backend, must_match_cid=True) is None
    assert authorize(request("CP001", "CP001", "wrong"), backend, must_match_cid=True).status == 401
    assert authorize(request("CP001", "CP002", "s3cret-pass"), backend, must_match_cid=True).status == 403


# NoAuth


def test_no_auth_lets_everyone_in() -> None:
    backend = NoAuth()
    assert not backend.requires_credentials
    assert backend.authenticate("anyone", "anything", cid="CP001", peer="192.0.2.1:1")


def test_no_auth_makes_authorize_allow_a_request_without_credentials() -> None:
    raw = (
        b"GET /ocpp/CP001 HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
    )
    req = parse_request(raw, path_prefix="/ocpp")
    assert not isinstance(req, Refusal)
    assert authorize(req, NoAuth(), must_match_cid=True) is None


# add_user / remove_user


def test_add_user_creates_the_file_with_mode_0640(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    assert add_user(str(path), "CP001", "pw") is False
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert FileBackend(str(path)).authenticate("CP001", "pw")


def test_add_user_sets_mode_0640_on_an_existing_file(passwd_file: Path) -> None:
    passwd_file.chmod(0o666)
    add_user(str(passwd_file), "CP009", "pw")
    assert stat.S_IMODE(passwd_file.stat().st_mode) == 0o640


def test_add_user_never_writes_the_password(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    add_user(str(path), "CP001", "visible-if-stored-in-clear")
    assert "visible-if-stored-in-clear" not in path.read_text()


def test_add_user_replaces_in_place_and_keeps_comments(passwd_file: Path) -> None:
    before = passwd_file.read_text().splitlines()
    assert add_user(str(passwd_file), "CP001", "new-pw") is True
    after = passwd_file.read_text().splitlines()
    assert after[:2] == before[:2] and after[3] == before[3]
    assert after[2].startswith("CP001:scrypt$") and after[2] != before[2]
    backend = FileBackend(str(passwd_file))
    assert backend.authenticate("CP001", "new-pw")
    assert not backend.authenticate("CP001", "s3cret-pass")


def test_add_user_appends_a_new_cid(passwd_file: Path) -> None:
    add_user(str(passwd_file), "CP003", "pw3")
    assert FileBackend(str(passwd_file)).cids() == ["CP001", "CP002", "CP003"]


def test_add_user_merges_duplicate_lines_into_one(tmp_path: Path, cp001_hash: str) -> None:
    path = tmp_path / "passwd"
    path.write_text(f"CP001:{cp001_hash}\nCP002:{cp001_hash}\nCP001:{cp001_hash}\n")
    add_user(str(path), "CP001", "pw")
    assert [line.split(":")[0] for line in path.read_text().splitlines()] == ["CP001", "CP002"]


@pytest.mark.parametrize("profile", [1, 2, 3])
def test_profile_round_trips_through_the_file(tmp_path: Path, profile: int) -> None:
    path = tmp_path / "passwd"
    add_user(str(path), "CP001", "pw", profile=profile)
    assert path.read_text().strip().endswith(f":{profile}")
    assert FileBackend(str(path)).profile("CP001") == profile


def test_replacing_without_a_profile_keeps_the_old_one(passwd_file: Path) -> None:
    add_user(str(passwd_file), "CP002", "pw")
    assert FileBackend(str(passwd_file)).profile("CP002") == 2


def test_replacing_with_a_profile_changes_it(passwd_file: Path) -> None:
    add_user(str(passwd_file), "CP002", "pw", profile=3)
    assert FileBackend(str(passwd_file)).profile("CP002") == 3


@pytest.mark.parametrize(("cid", "password", "profile"), [("CP+1", "pw", None), ("", "pw", None), ("a:b", "pw", None),
                                                          ("CP001", "", None), ("CP001", "pw", 4)])
def test_add_user_refuses_bad_input(tmp_path: Path, cid: str, password: str, profile) -> None:
    path = tmp_path / "passwd"
    with pytest.raises(ValueError):
        add_user(str(path), cid, password, profile)
    assert not path.exists()


def test_add_user_leaves_no_temporary_file(tmp_path: Path) -> None:
    add_user(str(tmp_path / "passwd"), "CP001", "pw")
    add_user(str(tmp_path / "passwd"), "CP002", "pw")
    assert sorted(os.listdir(tmp_path)) == ["passwd"]


def test_add_user_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real-passwd"
    link = tmp_path / "passwd"
    link.symlink_to(real)
    add_user(str(link), "CP001", "pw")
    assert link.is_symlink()
    assert FileBackend(str(real)).cids() == ["CP001"]


def test_add_user_keeps_the_owner_and_group_of_the_file(passwd_file: Path, monkeypatch) -> None:
    changes = []
    monkeypatch.setattr(credentials_file, "_existing_owner", lambda path: (4242, 4343))
    monkeypatch.setattr(os, "fchown", lambda fd, uid, gid: changes.append((uid, gid)))
    add_user(str(passwd_file), "CP009", "pw")
    assert changes == [(4242, 4343)]


def test_add_user_that_cannot_keep_the_owner_leaves_the_file_alone(passwd_file: Path, monkeypatch) -> None:
    before = passwd_file.read_text()

    def refuse(fd, uid, gid):
        raise PermissionError

    monkeypatch.setattr(credentials_file, "_existing_owner", lambda path: (4242, 4343))
    monkeypatch.setattr(os, "fchown", refuse)
    with pytest.raises(CredentialsError, match="owner"):
        add_user(str(passwd_file), "CP009", "pw")
    assert passwd_file.read_text() == before
    assert os.listdir(passwd_file.parent) == ["passwd"]


def test_remove_user_removes_the_line(passwd_file: Path) -> None:
    assert remove_user(str(passwd_file), "CP001") is True
    assert FileBackend(str(passwd_file)).cids() == ["CP002"]
    assert passwd_file.read_text().startswith("# charge points\n")


def test_remove_user_of_an_unknown_cid_returns_false_and_changes_nothing(passwd_file: Path) -> None:
    before = passwd_file.stat()
    assert remove_user(str(passwd_file), "CP999") is False
    assert passwd_file.stat().st_ino == before.st_ino


def test_remove_user_does_not_touch_comments_that_mention_the_cid(tmp_path: Path, cp001_hash: str) -> None:
    path = tmp_path / "passwd"
    path.write_text(f"#CP001:old\nCP001:{cp001_hash}\n")
    remove_user(str(path), "CP001")
    assert path.read_text() == "#CP001:old\n"


def test_remove_user_on_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="not found"):
        remove_user(str(tmp_path / "absent"), "CP001")


# passwd_main


def test_passwd_add_reads_the_password_from_stdin(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "passwd"
    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin\nignored\n"))
    assert passwd_main(["add", "CP001", "--password-stdin", "--file", str(path)]) == 0
    assert FileBackend(str(path)).authenticate("CP001", "from-stdin")
    out, err = capsys.readouterr()
    assert out == ""
    assert "from-stdin" not in err


def test_passwd_add_with_empty_stdin_fails_with_2(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert passwd_main(["add", "CP001", "--password-stdin", "--file", str(tmp_path / "passwd")]) == 2
    assert not (tmp_path / "passwd").exists()


def test_passwd_add_without_a_tty_generates_and_prints_the_password_once(tmp_path: Path, monkeypatch, capsys):
    path = tmp_path / "passwd"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert passwd_main(["add", "CP001", "--file", str(path)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1 and len(lines[0]) >= 20
    assert lines[0] not in err
    assert FileBackend(str(path)).authenticate("CP001", lines[0])


def test_passwd_add_on_a_tty_prompts_twice(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "passwd"
    answers = iter(["typed-pw", "typed-pw"])
    prompts = []
    monkeypatch.setattr("sys.stdin", TtyInput(""))
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": prompts.append(prompt) or next(answers))
    assert passwd_main(["add", "CP001", "--file", str(path)]) == 0
    assert len(prompts) == 2
    assert capsys.readouterr().out == ""
    assert FileBackend(str(path)).authenticate("CP001", "typed-pw")


@pytest.mark.parametrize("answers", [["one", "two"], ["", ""]])
def test_passwd_add_on_a_tty_refuses_mismatch_or_empty(tmp_path: Path, monkeypatch, answers) -> None:
    replies = iter(answers)
    monkeypatch.setattr("sys.stdin", TtyInput(""))
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(replies))
    assert passwd_main(["add", "CP001", "--file", str(tmp_path / "passwd")]) == 2
    assert not (tmp_path / "passwd").exists()


def test_passwd_add_on_a_tty_aborted_with_ctrl_d_fails_with_2(tmp_path: Path, monkeypatch) -> None:
    def eof(prompt=""):
        raise EOFError

    monkeypatch.setattr("sys.stdin", TtyInput(""))
    monkeypatch.setattr(getpass, "getpass", eof)
    assert passwd_main(["add", "CP001", "--file", str(tmp_path / "passwd")]) == 2


def test_passwd_add_with_profile_stores_it(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "passwd"
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    assert passwd_main(["add", "CP001", "--password-stdin", "--profile", "2", "--file", str(path)]) == 0
    assert FileBackend(str(path)).profile("CP001") == 2


@pytest.mark.parametrize(
    "argv",
    [[], ["frobnicate"], ["add"], ["add", "CP001", "--profile", "4"], ["add", "CP001", "--profile", "x"],
     ["add", "CP+1"], ["add", "a:b"], ["remove"], ["list", "extra"]],
)
def test_passwd_usage_errors_exit_2(tmp_path: Path, monkeypatch, argv: list[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    argv = [*argv, "--file", str(tmp_path / "passwd")] if argv else argv
    assert passwd_main(argv) == 2
    assert not (tmp_path / "passwd").exists()


def test_passwd_help_exits_0(capsys) -> None:
    assert passwd_main(["--help"]) == 0
    assert "add" in capsys.readouterr().out


def test_passwd_remove_exits_0_then_1(passwd_file: Path) -> None:
    assert passwd_main(["remove", "CP001", "--file", str(passwd_file)]) == 0
    assert passwd_main(["remove", "CP001", "--file", str(passwd_file)]) == 1
    assert FileBackend(str(passwd_file)).cids() == ["CP002"]


def test_passwd_remove_with_a_missing_file_exits_2(tmp_path: Path, capsys) -> None:
    path = tmp_path / "absent"
    assert passwd_main(["remove", "CP001", "--file", str(path)]) == 2
    assert str(path) in capsys.readouterr().err


def test_passwd_list_prints_cids_and_never_hashes(passwd_file: Path, capsys) -> None:
    assert passwd_main(["list", "--file", str(passwd_file)]) == 0
    out = capsys.readouterr().out
    assert out == "CP001\nCP002\n"


def test_passwd_list_of_a_bad_file_exits_2_naming_the_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "passwd"
    path.write_text("# header\nCP001:not-a-hash\n")
    assert passwd_main(["list", "--file", str(path)]) == 2
    assert f"{path}:2:" in capsys.readouterr().err


def test_passwd_add_into_a_missing_directory_exits_2(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    path = tmp_path / "no-such-dir" / "passwd"
    assert passwd_main(["add", "CP001", "--password-stdin", "--file", str(path)]) == 2
    assert "no-such-dir" in capsys.readouterr().err


def test_passwd_round_trip_add_list_remove(tmp_path: Path, monkeypatch, capsys) -> None:
    path = str(tmp_path / "passwd")
    for cid in ("CP-B", "CP-A"):
        monkeypatch.setattr("sys.stdin", io.StringIO(f"pw-{cid}\n"))
        assert passwd_main(["add", cid, "--password-stdin", "--file", path]) == 0
    assert passwd_main(["remove", "CP-B", "--file", path]) == 0
    capsys.readouterr()
    assert passwd_main(["list", "--file", path]) == 0
    assert capsys.readouterr().out == "CP-A\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_set_profile_keeps_the_password_and_changes_only_the_profile(tmp_path):
    from ocpp_gw.auth import FileBackend, add_user, set_profile
    path = str(tmp_path / "passwd")
    add_user(path, "CP1", "first-password")
    assert set_profile(path, "CP1", 3)
    backend = FileBackend(path)
    assert backend.profile("CP1") == 3
    assert backend.authenticate("CP1", "first-password")
    assert not set_profile(path, "CP2", 2)


def test_a_reconnect_with_the_same_password_skips_the_kdf(tmp_path, monkeypatch):
    from ocpp_gw import auth
    path = str(tmp_path / "passwd")
    auth.add_user(path, "CP1", "right-password")
    backend = auth.FileBackend(path)
    runs = []
    real = auth.verify
    monkeypatch.setattr(auth.backends, "verify", lambda h, p: runs.append(p) or real(h, p))
    assert backend.authenticate("CP1", "right-password")
    assert backend.authenticate("CP1", "right-password")
    assert not backend.authenticate("CP1", "wrong-password")
    assert runs == ["right-password", "wrong-password"]


def test_a_changed_password_in_the_file_invalidates_what_was_remembered(tmp_path):
    from ocpp_gw import auth
    path = str(tmp_path / "passwd")
    auth.add_user(path, "CP1", "old-password")
    backend = auth.FileBackend(path)
    assert backend.authenticate("CP1", "old-password")
    auth.add_user(path, "CP1", "new-password")
    backend.reload()
    assert not backend.authenticate("CP1", "old-password")
    assert backend.authenticate("CP1", "new-password")


# OCPP versions per charge point (SPEC §9): an optional 4th field


def test_a_line_without_versions_allows_every_served_version(tmp_path, cp001_hash):
    path = tmp_path / "passwd"
    path.write_text(f"CP001:{cp001_hash}\nCP002:{cp001_hash}:2\n")
    backend = FileBackend(str(path))
    assert backend.versions("CP001") is None and backend.versions("CP002") is None


def test_the_versions_field_restricts_a_charge_point_and_may_leave_the_profile_default(tmp_path, cp001_hash):
    path = tmp_path / "passwd"
    path.write_text(f"CP001:{cp001_hash}:2:ocpp1.6\nCP002:{cp001_hash}::ocpp2.0.1,ocpp1.6\n")
    backend = FileBackend(str(path))
    assert backend.versions("CP001") == {"ocpp1.6"} and backend.profile("CP001") == 2
    assert backend.versions("CP002") == {"ocpp2.0.1", "ocpp1.6"} and backend.profile("CP002") == 1
    assert backend.versions("CP404") is None


def test_replacing_a_password_or_profile_keeps_the_versions_restriction(tmp_path, cp001_hash):
    path = tmp_path / "passwd"
    path.write_text(f"CP001:{cp001_hash}::ocpp1.6\n")
    credentials_file.add_user(str(path), "CP001", "another-password")
    assert credentials_file.load_credentials(str(path))["CP001"].versions == {"ocpp1.6"}
    credentials_file.set_profile(str(path), "CP001", 2)
    entry = credentials_file.load_credentials(str(path))["CP001"]
    assert (entry.profile, entry.versions) == (2, {"ocpp1.6"})
    credentials_file.add_user(str(path), "CP001", "third-password", 3)
    entry = credentials_file.load_credentials(str(path))["CP001"]
    assert (entry.profile, entry.versions) == (3, {"ocpp1.6"})


def test_passwd_add_sets_and_lifts_a_versions_restriction(tmp_path, monkeypatch):
    path = tmp_path / "passwd"
    monkeypatch.setattr("sys.stdin", io.StringIO("first-password\n"))
    assert passwd_main(["add", "CP001", "--password-stdin", "--versions", "ocpp2.0.1 ocpp1.6", "--file", str(path)]) == 0
    assert credentials_file.load_credentials(str(path))["CP001"].versions == {"ocpp2.0.1", "ocpp1.6"}
    assert path.read_text().split(":")[2:] == ["", "ocpp2.0.1,ocpp1.6\n"]
    monkeypatch.setattr("sys.stdin", io.StringIO("second-password\n"))
    assert passwd_main(["add", "CP001", "--password-stdin", "--versions", "any", "--file", str(path)]) == 0
    assert credentials_file.load_credentials(str(path))["CP001"].versions is None


def test_passwd_add_refuses_an_unknown_version(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("a-password\n"))
    path = tmp_path / "passwd"
    assert passwd_main(["add", "CP001", "--password-stdin", "--versions", "ocpp2.0", "--file", str(path)]) == 2
    assert "unknown OCPP version 'ocpp2.0'" in capsys.readouterr().err
