"""The dashboard in a real browser (Debian's chromium through selenium) against the
example apps served on 127.0.0.1 (FastAPI on uvicorn, Flask on werkzeug): traffic
shows up, a key is revoked from the page, and the next API call with it is refused.

Screenshots are kept in ``test-artifacts/dashboard/`` (git-ignored). Without a
browser the test skips, except under CI, where it fails.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apikeys import KeyManager
from apikeys.storage import SQLiteStore
from web_support import free_port, server_process

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI needs it: .ci/run installs chromium and chromium-driver)")
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A headless chromium driven by selenium, with its console log kept."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install -e '.[test]')")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        _missing("chromium and chromedriver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",  # the tests run as root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _command(framework: str, port: int) -> list[str]:
    if framework == "fastapi":
        return [
            *(sys.executable, "-m", "uvicorn", "examples.fastapi_app:app"),
            *("--host", "127.0.0.1", "--port", str(port), "--no-proxy-headers"),
        ]
    return [
        *(sys.executable, "-m", "flask", "--app", "examples.flask_app", "run"),
        *("--host", "127.0.0.1", "--port", str(port), "--no-reload", "--no-debugger"),
    ]


@pytest.fixture(params=["fastapi", "flask"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """An example app (uvicorn or werkzeug's server) on a free loopback port:
    (framework, base URL, its key database)."""
    database = tmp_path / "shop.db"
    port = free_port()
    log_path = tmp_path / "server.log"
    environment = {
        **os.environ,
        "APIKEYS_DB": str(database),  # the FastAPI example
        "FLASK_APIKEYS_DATABASE_URL": f"sqlite:///{database}",  # the Flask example
    }
    base = f"http://127.0.0.1:{port}"
    with server_process(
        _command(request.param, port),
        ready_url=f"{base}/health",
        cwd=ROOT,
        env=environment,
        log=log_path,
    ):
        yield request.param, base, database


def _shot(driver: Any, framework: str, name: str) -> None:
    folder = ARTIFACTS / framework
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / f"{name}.png"))


@pytest.mark.slow
def test_traffic_then_revoke_from_the_page(browser: Any, server: tuple[str, str, Path]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    framework, base, database = server
    with KeyManager(SQLiteStore(str(database)), prefix="shop") as keys:
        issued = keys.create(owner="acme-corp", name="checkout", scopes=["orders:read"])
        retired = keys.create(owner="other-corp", name="retired")
        keys.revoke(retired.key.id, reason="replaced")
    key_id = issued.key.id
    auth = {"Authorization": f"Bearer {issued.plaintext}"}
    with httpx.Client(base_url=base, timeout=10) as http:
        for _ in range(5):
            assert http.get("/orders", headers=auth).status_code == 200
        for _ in range(2):
            assert http.get("/orders/99", headers=auth).status_code == 404
        gone = {"Authorization": f"Bearer {retired.plaintext}"}
        assert http.get("/orders", headers=gone).status_code == 401

        browser.get(f"{base}/apikeys/")
        assert browser.title.startswith("Overview")
        top = browser.find_element(By.XPATH, "//h2[text()='Top keys']/..")
        assert key_id in top.text
        assert "7" in top.find_element(By.XPATH, f".//tr[contains(., '{key_id}')]").text
        failures = browser.find_element(By.XPATH, "//h2[text()='Failures by code']/..")
        assert "revoked 1" in failures.text
        _shot(browser, framework, "overview")

        # Keyboard only: the skip link comes first, then the navigation.
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        assert browser.switch_to.active_element.text == "Skip to content"

        browser.find_element(By.LINK_TEXT, "Keys").click()
        search = browser.find_element(By.NAME, "q")
        search.send_keys("checkout", Keys.ENTER)
        # The form submits asynchronously to this call: wait for the new page.
        WebDriverWait(browser, 30).until(expected_conditions.url_contains("q=checkout"))
        assert "q=checkout" in browser.current_url  # filters live in the URL
        browser.find_element(By.LINK_TEXT, key_id).click()
        assert "7 requests." in browser.page_source
        routes = browser.find_element(By.XPATH, "//h2[text()='Routes and statuses']/..")
        assert "/orders" in routes.text
        assert "404" in routes.text
        assert issued.plaintext not in browser.page_source
        _shot(browser, framework, "key")

        browser.find_element(By.PARTIAL_LINK_TEXT, "Revoke").click()
        browser.find_element(By.NAME, "reason").send_keys("leaked in a log")
        _shot(browser, framework, "confirm-revoke")
        browser.find_element(By.XPATH, "//button[@type='submit']").click()
        WebDriverWait(browser, 30).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "[role=status]"))
        )
        assert "Revoked." in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
        assert "leaked in a log" in browser.page_source
        _shot(browser, framework, "revoked")

        refused = http.get("/orders", headers=auth)
        assert refused.status_code == 401

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
