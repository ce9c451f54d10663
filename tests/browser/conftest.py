"""Fixtures for the console's browser tests: Debian's headless Chromium driven through chromium-driver
(Selenium), a gateway with the admin token on, a reference backend, and the page objects.

Nothing is downloaded at run time: the browser and its driver come from Debian (`make test` installs
chromium and chromium-driver), Selenium from the venv, and Selenium Manager is kept offline.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tools.harness import render_config
from tests.integration._support import start_gateway

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1440,900",
                  "--lang=en-US", "--force-color-profile=srgb", "--hide-scrollbars"]
ADMIN_TOKEN = "console-test-token-0123456789abcdef"
# Screenshots go to a temporary directory of the session, or to this directory when set (`make console-screenshot`
# uses it to refresh docs/img/console.png); a test run never writes into the tree.
SCREENSHOTS_ENV = "OCPP_GW_SCREENSHOTS"


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session; each test starts on a blank page with no cookies."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    assert not missing, f"{', '.join(missing)} missing: run `make test` (it installs chromium and chromium-driver)"
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser or a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser):
    browser.get("about:blank")
    browser.delete_all_cookies()
    yield browser
    # Leave the console: a page left open keeps polling the gateway's admin API after the test.
    browser.get("about:blank")


@pytest.fixture
def token_file(tmp_path) -> Path:
    path = tmp_path / "admin.token"
    path.write_text(ADMIN_TOKEN + "\n")
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def passwd_copy(tmp_path, passwd_file) -> Path:
    path = tmp_path / "passwd"
    shutil.copy(passwd_file, path)
    os.chmod(path, 0o640)
    return path


@pytest.fixture
def console_gateway(gateway_factory, token_file, passwd_copy, browser):
    """A gateway as an operator would expose it: admin token required, its own credentials file,
    payloads kept in the history, and a short awaiting_timeout so a gateway error comes quickly.

    When the test ends the browser leaves the console first: a console left open keeps polling, and
    the gateway's leak check (before it stops) would count those requests' threads and sockets."""
    gateway = start_gateway(gateway_factory, {
        "admin.token_file": token_file,
        "auth.file": passwd_copy,
        "admin.history_payloads": "true",
        "ocpp.awaiting_timeout": "1s",
    }, start=False)
    gateway.settings["admin.listener"] = f"127.0.0.1:{gateway.admin_port}"  # _support turns it off
    gateway.config_path.write_text(render_config(gateway.settings))
    yield gateway.start()
    browser.get("about:blank")


@pytest.fixture
def backend(broker, console_gateway):
    """The reference CSMS on the console gateway's topics: answers BootNotification and friends."""
    from csms_responder import Responder

    with Responder(broker.host, broker.port, mountpoint=console_gateway.mountpoint) as responder:
        yield responder


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory) -> Path:
    chosen = os.environ.get(SCREENSHOTS_ENV)
    if not chosen:
        return tmp_path_factory.mktemp("screenshots")
    Path(chosen).mkdir(parents=True, exist_ok=True)
    return Path(chosen)


@pytest.fixture
def screenshot(page, screenshot_dir):
    """screenshot(name) saves the page as console-<name>.png in the screenshot directory and returns the path."""
    def take(name: str) -> Path:
        path = screenshot_dir / f"console-{name}.png"
        assert page.save_screenshot(str(path)), f"no screenshot for {name}"
        return path
    return take
