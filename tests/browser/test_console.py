"""The operator console in headless Chromium, against a real gateway, broker and charge point clients:
log in, see a charger, its BootNotification and gateway errors, kick it, add a credential that lets a
new charger in, read the status; and a cross-site page cannot change anything."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from ocpp_gw import auth
from tests.browser.conftest import ADMIN_TOKEN
from tests.integration._support import connect_cp, recv_frame, wait_closed

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Depot-22", "firmwareVersion": "4.2.1"}


def wait(page, condition, timeout: float = 10.0, message: str = ""):
    # The console re-renders its tables on each refresh, so an element found a moment ago may be gone: try again.
    return WebDriverWait(page, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(lambda driver: condition(),
                                                                                      message)


def css(page, selector: str):
    return page.find_elements(By.CSS_SELECTOR, selector)


def text_of(page, selector: str) -> str:
    found = css(page, selector)
    return found[0].text if found else ""


def open_console(page, gateway, hash_: str = "#/chargers") -> None:
    """Load the console and log in with the admin token through its form."""
    page.get(gateway.admin_url("/") + hash_)
    wait(page, lambda: css(page, "#view-login:not([hidden])"), message="no login form")
    page.find_element(By.ID, "login-token").send_keys(ADMIN_TOKEN)
    page.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    wait(page, lambda: css(page, "#nav:not([hidden])"), message="login did not succeed")


def row(page, table: str, cid: str):
    found = css(page, f"#{table} tbody tr[data-cid='{cid}']")
    return found[0] if found else None


def boot(cp, unique_id: str = "boot-1") -> list:
    cp.send(json.dumps([2, unique_id, "BootNotification", BOOT]))
    return recv_frame(cp)


def test_the_login_form_refuses_a_wrong_token_and_lets_the_right_one_in(page, console_gateway, screenshot):
    page.get(console_gateway.admin_url("/"))
    wait(page, lambda: css(page, "#view-login:not([hidden])"))
    screenshot("login")
    page.find_element(By.ID, "login-token").send_keys("not-the-token-0123456789")
    page.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    wait(page, lambda: text_of(page, "#login-error") == "Wrong token.")
    assert css(page, "#nav[hidden]")
    page.find_element(By.ID, "login-token").clear()
    open_console(page, console_gateway)
    cookie = page.get_cookie(f"ocpp_gw_session_{console_gateway.admin_port}")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"


def test_a_connected_charger_appears_and_the_filter_narrows_the_list(page, console_gateway, backend, screenshot):
    with connect_cp(console_gateway, "CP021") as cp21, connect_cp(console_gateway, "CP022") as cp22:
        assert boot(cp21)[0] == 3 and boot(cp22)[0] == 3
        open_console(page, console_gateway)
        wait(page, lambda: row(page, "chargers", "CP021") and row(page, "chargers", "CP022"))
        wait(page, lambda: "BootNotification" in row(page, "chargers", "CP021").text)
        cells = [cell.text for cell in row(page, "chargers", "CP021").find_elements(By.TAG_NAME, "td")]
        assert cells[0] == "CP021" and cells[1].startswith("127.0.0.1:")
        assert cells[3] == "WAITING" and cells[5] == "5 min"  # the responder's BootNotification interval
        assert cells[6:9] == ["0", "1", "1"]
        assert cells[9] == "ocpp1.6"  # the OCPP version (SPEC §9)
        assert text_of(page, "#charger-count") == "2 connected"
        screenshot("chargers")

        page.find_element(By.ID, "charger-filter").send_keys("cp022")
        wait(page, lambda: row(page, "chargers", "CP021") is None)
        assert row(page, "chargers", "CP022") is not None


def test_the_detail_shows_the_boot_notification_and_the_gateway_errors(page, console_gateway, backend, screenshot):
    with connect_cp(console_gateway, "CP023") as cp:
        boot(cp)
        # A CSMS call the charger leaves unanswered: after awaiting_timeout the CSMS gets a gateway error.
        reply = backend.call("CP023", "Reset", {"type": "Soft"}, timeout=10)
        assert reply["ErrorDetails"]["reason"] == "timeout"
        open_console(page, console_gateway, "#/chargers/CP023")
        wait(page, lambda: text_of(page, "#charger-title") == "CP023")
        wait(page, lambda: css(page, "#charger-errors tbody tr"))
        history = [r.text for r in css(page, "#charger-history tbody tr")]
        boot_row = next(r for r in history if "CP → gateway" in r and "BootNotification" in r)
        assert "boot-1" in boot_row and '"chargePointModel":"Depot-22"' in boot_row
        assert any("gateway → CP" in r and "CallResult" in r and "boot-1" in r for r in history)
        (error,) = [r.text for r in css(page, "#charger-errors tbody tr")]
        assert "timeout" in error and reply["UniqueId"] in error and "Reset" in error
        assert "Payloads are kept" in text_of(page, "#charger-payload-note")
        screenshot("charger-detail")


def test_kick_closes_the_connection_and_the_page_shows_it_gone(page, console_gateway, backend, screenshot):
    with connect_cp(console_gateway, "CP024") as cp, connect_cp(console_gateway, "CP027") as other:
        boot(cp)
        boot(other)
        open_console(page, console_gateway)
        wait(page, lambda: row(page, "chargers", "CP024"))
        wait(page, lambda: act_in_row(page, "chargers", "CP024", "button[data-kick]"))
        wait(page, lambda: css(page, "#confirm[open]"))
        assert "Kick CP024?" in text_of(page, "#confirm-text")
        screenshot("kick-confirm")
        page.find_element(By.ID, "confirm-ok").click()
        closed = wait_closed(cp)
        assert (closed.code, closed.reason) == (1000, "kicked")

        def kicked_row():  # read in one go, so a re-render in between cannot mix two renderings
            kicked, other = row(page, "chargers", "CP024"), row(page, "chargers", "CP027")
            if kicked is None or "gone" not in kicked.get_attribute("class"):
                return None
            return (kicked.text, kicked.find_elements(By.CSS_SELECTOR, "button[data-kick]"),
                    other.get_attribute("class"))
        text, kick_buttons, other_class = wait(page, kicked_row)
        assert "kicked" in text
        assert not kick_buttons
        assert "live" in other_class
        screenshot("chargers-after-kick")
        page.set_window_size(1280, 420)  # the README's picture (make console-screenshot): no empty page below
        try:
            screenshot("readme")
        finally:
            page.set_window_size(1440, 900)


def test_kick_can_be_cancelled(page, console_gateway):
    with connect_cp(console_gateway, "CP025") as cp:
        open_console(page, console_gateway, "#/chargers/CP025")
        wait(page, lambda: text_of(page, "#charger-state") == "WAITING")
        page.find_element(By.ID, "charger-kick").click()
        wait(page, lambda: css(page, "#confirm[open]"))
        page.find_element(By.ID, "confirm-cancel").click()
        wait(page, lambda: not css(page, "#confirm[open]"))
        cp.ping().wait(5)  # still connected
    assert not any("kicked" in line for line in console_gateway.logs)


def act_in_row(page, table, cid, selector, action=lambda element: element.click()) -> bool:
    """Find `selector` in the current row of `cid` and act on it; False when the row is (re)rendering."""
    try:
        action(row(page, table, cid).find_element(By.CSS_SELECTOR, selector))
        return True
    except (StaleElementReferenceException, AttributeError):
        return False


def test_a_credential_added_on_the_page_lets_a_new_charger_connect(page, console_gateway, passwd_copy,
                                                                   screenshot):
    open_console(page, console_gateway, "#/credentials")
    wait(page, lambda: row(page, "credentials", "CP001"))
    assert "scrypt" not in page.page_source
    page.find_element(By.ID, "credential-cid").send_keys("DEPOT-NEW-7")
    Select(page.find_element(By.ID, "credential-profile")).select_by_value("1")
    page.find_element(By.CSS_SELECTOR, "#credential-form button[type=submit]").click()
    wait(page, lambda: css(page, "#credential-secret:not([hidden])"))
    assert text_of(page, "#credential-secret-cid") == "DEPOT-NEW-7"
    password = text_of(page, "#credential-secret-password")
    assert len(password) >= 20
    wait(page, lambda: row(page, "credentials", "DEPOT-NEW-7"))
    screenshot("credentials")

    with connect_cp(console_gateway, "DEPOT-NEW-7", password=password) as cp:
        cp.send(json.dumps([2, "hb-1", "Heartbeat", {}]))
        page.get(console_gateway.admin_url("/#/chargers"))
        wait(page, lambda: row(page, "chargers", "DEPOT-NEW-7"))

    # The security profile and removal, from the same page.
    page.get(console_gateway.admin_url("/#/credentials"))
    wait(page, lambda: row(page, "credentials", "DEPOT-NEW-7"))
    wait(page, lambda: act_in_row(page, "credentials", "DEPOT-NEW-7", "select",
                                  lambda element: Select(element).select_by_value("2")))
    wait(page, lambda: "security profile 2" in text_of(page, "#credential-message"))
    assert auth.load_credentials(str(passwd_copy))["DEPOT-NEW-7"].profile == 2
    # The table is re-rendered after the profile change: click in whichever row is current.
    wait(page, lambda: act_in_row(page, "credentials", "DEPOT-NEW-7", "button[data-remove]"))
    wait(page, lambda: css(page, "#confirm[open]"))
    page.find_element(By.ID, "confirm-ok").click()
    wait(page, lambda: row(page, "credentials", "DEPOT-NEW-7") is None)
    assert "DEPOT-NEW-7" not in auth.load_credentials(str(passwd_copy))


def test_the_status_page_shows_mqtt_listeners_uptime_and_the_configuration(page, console_gateway, screenshot):
    open_console(page, console_gateway, "#/status")
    wait(page, lambda: "connected" in text_of(page, "#status-facts"))
    facts = text_of(page, "#status-facts")
    assert console_gateway.client_id in facts and "ocpp-gw 0." in facts and "Uptime" in facts
    listeners = text_of(page, "#status-listeners")
    assert f"127.0.0.1:{console_gateway.port}" in listeners and f"127.0.0.1:{console_gateway.admin_port}" in listeners
    wait(page, lambda: "admin.token_file" in text_of(page, "#status-config"))
    assert ADMIN_TOKEN not in page.page_source
    screenshot("status")


# -- a hostile page on another site -----------------------------------------------------------------

ATTACK_PAGE = """<!doctype html><html><body>
<form id="f" method="POST" action="{admin}/api/v1/credentials" enctype="text/plain">
<input name='{{"cid":"EVIL-1","password":"attacker-pass","x":"' value='"}}'>
</form>
<p id="fetch-result">pending</p>
<script>
fetch("{admin}/api/v1/clients/{cid}", {{method: "DELETE", credentials: "include"}})
  .then(r => {{ document.getElementById("fetch-result").textContent = "status " + r.status; }})
  .catch(e => {{ document.getElementById("fetch-result").textContent = "blocked"; }});
</script>
</body></html>"""


@pytest.fixture
def attacker_site():
    """A page on http://localhost:<port>/ (another site than the console's 127.0.0.1) whose body the test sets."""
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = pages.get(self.path, b"not found")
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="attacker-site", daemon=True)
    thread.start()

    def serve(path: str, html: str) -> str:
        pages[path] = html.encode()
        return f"http://localhost:{server.server_address[1]}{path}"

    yield serve
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_a_cross_site_post_is_refused(page, console_gateway, passwd_copy, attacker_site, screenshot):
    with connect_cp(console_gateway, "CP026") as cp:
        open_console(page, console_gateway)  # the operator is logged in in this browser
        wait(page, lambda: row(page, "chargers", "CP026"))
        before = passwd_copy.read_bytes()
        admin = console_gateway.admin_url("").rstrip("/")
        page.get(attacker_site("/attack", ATTACK_PAGE.format(admin=admin, cid="CP026")))
        wait(page, lambda: text_of(page, "#fetch-result") != "pending")
        assert text_of(page, "#fetch-result") == "blocked"  # the DELETE's preflight gets no CORS permission
        page.find_element(By.ID, "f").submit()
        wait(page, lambda: "error" in page.find_element(By.TAG_NAME, "body").text)
        answer = json.loads(page.find_element(By.TAG_NAME, "body").text)
        screenshot("cross-site-refused")
        assert "cross-site request refused" in answer["error"]
        assert passwd_copy.read_bytes() == before
        cp.ping().wait(5)  # not kicked
    assert "EVIL-1" not in auth.load_credentials(str(passwd_copy))
    console_gateway.wait_for_log(r"admin POST /api/v1/credentials from 127\.0\.0\.1 refused: cross-site")
