"""be2's docs page in a real browser (Debian's headless chromium), with no network but loopback."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.devcluster_harness import DevCluster
from tests.reliability.services import Service, be2_environment, start_service

pytestmark = pytest.mark.e2e

# The browser and its driver, as `make sysdeps` installs them (Debian: chromium, chromium-driver).
BROWSER = ("chromium", "chromium")
DRIVER = ("chromedriver", "chromium-driver")
RENDER_TIMEOUT_SECONDS = 30.0
# Anything that is not loopback goes to a proxy that refuses (port 9, discard) and no host name
# resolves: the page has to work from what be2 serves.
OFFLINE = (
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)


def _executable(command: str, package: str) -> str:
    found = shutil.which(command)
    if found is None:
        # Never a skip: `make test` installs these through `make sysdeps`.
        pytest.fail(f"{command} not found: install the Debian package {package} (make sysdeps)")
    return found


@pytest.fixture(scope="module")
def be2(devcluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    env = be2_environment(devcluster)
    with start_service("be2", env, tmp_path_factory.mktemp("docs-be2")) as service:
        yield service


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = _executable(*BROWSER)
    for argument in (
        "--headless=new",
        # As root (CI) chromium refuses to start with its sandbox.
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,2400",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        *OFFLINE,
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver is named, so selenium never looks for (or downloads) one of its own.
    driver = webdriver.Chrome(options=options, service=DriverService(_executable(*DRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for(driver: WebDriver, what: str, found: Callable[[WebDriver], Any]) -> Any:
    try:
        return WebDriverWait(driver, RENDER_TIMEOUT_SECONDS, poll_frequency=0.1).until(found)
    except TimeoutException:
        errors = [entry["message"] for entry in driver.get_log("browser")]
        pytest.fail(f"the docs page did not show {what}; browser console: {errors}")


def _operation(driver: WebDriver, method: str, path: str) -> WebElement:
    for block in driver.find_elements(By.CSS_SELECTOR, f".opblock.opblock-{method}"):
        shown = block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").text
        if shown.replace("\u200b", "") == path:
            return block
    raise AssertionError(f"no {method.upper()} {path} on the page")


def _execute(driver: WebDriver, block: WebElement) -> tuple[str, str]:
    """Press Execute (after Clear, if an answer is shown); (status, body) of the new answer."""
    for clear in block.find_elements(By.CSS_SELECTOR, "button.btn-clear"):
        clear.click()
        _wait_for(
            driver,
            "the answer cleared",
            lambda _: not block.find_elements(By.CSS_SELECTOR, ".live-responses-table"),
        )
    block.find_element(By.CSS_SELECTOR, "button.execute").click()
    answer = _wait_for(
        driver,
        "the live answer",
        lambda _: block.find_element(By.CSS_SELECTOR, ".live-responses-table .response"),
    )
    status = answer.find_element(By.CSS_SELECTOR, ".response-col_status").text.strip()
    body = answer.find_element(By.CSS_SELECTOR, ".response-col_description pre").text
    return status, body


def _authorize(driver: WebDriver, token: str | None) -> None:
    """Set (or, with None, remove) the Bearer token through the page's Authorize dialog."""
    driver.find_element(By.CSS_SELECTOR, ".auth-wrapper button.authorize").click()
    dialog = _wait_for(
        driver, "the Authorize dialog", lambda d: d.find_element(By.CSS_SELECTOR, ".modal-ux")
    )
    if token is None:
        dialog.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.authorize").click()
    else:
        dialog.find_element(By.CSS_SELECTOR, ".auth-container input").send_keys(token)
        dialog.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.authorize").click()
    dialog.find_element(By.CSS_SELECTOR, "button.btn-done").click()


def test_the_docs_page_renders_offline_and_tries_out_validate_auth(
    browser: WebDriver, be2: Service, devcluster: DevCluster, tmp_path: Path
) -> None:
    browser.get(f"{be2.url}/schema/swagger")
    _wait_for(browser, "its operations", lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"))

    # Every resource came from be2 itself.
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name)"
    )
    assert loaded, "no resource loaded"
    assert all(url.startswith(f"{be2.url}/") for url in loaded), loaded

    paths = {
        element.text.replace("\u200b", "")
        for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    }
    assert {"/validate-auth", "/protected", "/healthz", "/readyz", "/metrics"} <= paths

    # The documented answers: the example identity under 200, a reason code under 401.
    block = _operation(browser, "get", "/validate-auth")
    block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    responses = _wait_for(
        browser,
        "the responses of GET /validate-auth",
        lambda _: block.find_element(By.CSS_SELECTOR, ".responses-table"),
    )
    documented = responses.text
    assert '"authenticated": true' in documented
    assert '"subject": "system:serviceaccount:default:be-sa"' in documented
    assert '"reason": "missing_token"' in documented
    browser.save_screenshot(str(tmp_path / "docs-page.png"))

    # Try it out: without a token the 401, with be's token from the devcluster its identity.
    block.find_element(By.CSS_SELECTOR, "button.try-out__btn").click()
    status, body = _execute(browser, block)
    assert status == "401", body
    assert '"reason": "missing_token"' in body
    _authorize(browser, devcluster.pod("be").token())
    status, body = _execute(browser, block)
    assert status == "200", body
    assert '"authenticated": true' in body
    assert f'"subject": "{devcluster.pod("be").subject}"' in body
    browser.save_screenshot(str(tmp_path / "docs-page-try-it-out.png"))

    assert (tmp_path / "docs-page.png").read_bytes().startswith(b"\x89PNG")
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    # The one expected console error is the 401 the page itself asked for.
    assert all("401" in message for message in severe), severe
