"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``) driven through
Debian's ``chromium-driver`` by Selenium, against a running API over a store with data on
every page (``tests/dashboard_data.py``). Each page loads, its charts are drawn (a canvas with
pixels or an SVG with shapes), the browser logs no error, and a wrong key gets a clear
message. Screenshots go to the test's temporary folder (``DASHBOARD_SHOTS`` names another).

Needs ``apt-get install chromium chromium-driver`` (``make browser``, which ``make test`` runs)
and the dev extra's ``selenium``; skipped with a message naming what is missing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_server import SERVICE_KEY, ApiServer, start_api, token
from tests.dashboard_data import fill_topics, prepare_dashboard
from tests.fixtures.broker import _Tree, wait_for_progress

pytestmark = pytest.mark.integration

PAGES = ("overview", "demand", "versions", "drift", "network")
MISSING = (
    "headless Chromium not found: apt-get install chromium chromium-driver (or `make browser`)"
)

try:  # the dev extra; the JSON routes' test below runs without it
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
except ImportError:  # pragma: no cover - depends on the venv
    webdriver = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def api(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tag = uuid.uuid4().hex[:8]
    topic, consumer = f"t-{tag}-sales", f"streams-{tag}"
    server = start_api(
        kafka, tmp_path_factory.mktemp("dashboard"), prepare_dashboard(consumer, topic),
        TOPIC_SALES=topic, STREAMS_APP_ID=consumer,
    )  # fmt: skip
    fill_topics(kafka, topic)
    yield server
    server.proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if webdriver is None:
        pytest.skip("selenium not installed: pip install -e '.[dev]' (the dev extra)")
    if not (CHROMIUM and DRIVER):
        pytest.skip(MISSING)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1800"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("DASHBOARD_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(folder)
    return tmp_path_factory.mktemp("shots")


def _wait(driver: Any, api: ApiServer, script: str) -> object:
    """``script``'s value once truthy; fails only when neither the API nor the browser moved
    for the stall bound (no wall-clock deadline)."""
    tree = _Tree(driver.service.process.pid)
    return wait_for_progress(
        lambda: driver.execute_script(script), lambda: (api.progress(), tree.ticks())
    )


def _errors(driver: Any) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


SIGNED_IN = "return !document.getElementById('nav').hidden"

#: charts drawn on the page: canvases with at least one non-blank pixel, SVGs with shapes
CHARTS = """
const main = document.getElementById('page');
let canvases = 0;
for (const c of main.querySelectorAll('canvas')) {
  if (!c.width || !c.height) continue;
  const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) { canvases++; break; }
}
const svgs = [...main.querySelectorAll('svg')].filter(
  (s) => s.querySelectorAll('rect, circle, path, line').length > 0).length;
return {canvases, svgs};
"""


def test_pages_render_in_a_browser(api: ApiServer, browser: Any, shots: Path):
    driver = browser
    driver.get(api.url + "/")
    _wait(driver, api, "return !document.getElementById('login').hidden")
    # a wrong key: a clear message, no page
    driver.find_element(By.ID, "login-value").send_keys("not-the-key")
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    message = _wait(driver, api, "const e = document.getElementById('login-error');"
                                 "return !e.hidden && e.textContent")  # fmt: skip
    assert "refused" in message and "401" in message, message
    assert driver.execute_script("return sessionStorage.length") == 0
    driver.save_screenshot(str(shots / "wrong-key.png"))
    driver.get_log("browser")  # the refused request is logged by the browser: not a page error

    driver.find_element(By.ID, "login-value").send_keys(SERVICE_KEY)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    _wait(driver, api, SIGNED_IN)
    for page in PAGES:
        driver.execute_script(f"location.hash = '#{page}'")
        ready = (
            f"const m = document.getElementById('page'); return m.dataset.page === '{page}'"
            " && m.dataset.ready !== 'false' && m.dataset.ready"
        )
        state = _wait(driver, api, ready)
        banner = driver.find_element(By.ID, "banner").text
        assert state == "true", f"{page}: {banner}"
        if page == "overview":  # events/s is drawn from the second refresh on
            _wait(driver, api, "return rates.samples.length >= 3")
        charts = driver.execute_script(CHARTS)
        driver.save_screenshot(str(shots / f"{page}.png"))
        assert charts["canvases"] + charts["svgs"] > 0, (page, charts)
        assert _errors(driver) == [], page
        # the key is in the tab's session only, never in the address
        assert SERVICE_KEY not in driver.current_url
    text = driver.find_element(By.ID, "page").text
    assert "rsrp-river_linear" in text and "MONITORING" in text  # the network page's field
    assert SERVICE_KEY not in api.proc.output()

    # a token: the same permissions as the JSON routes (ml:models without ml:predict)
    driver.find_element(By.ID, "logout").click()
    assert driver.execute_script("return sessionStorage.length") == 0
    Select(driver.find_element(By.ID, "login-kind")).select_by_value("token")
    driver.find_element(By.ID, "login-value").send_keys(token(["ml:models"]))
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    _wait(driver, api, SIGNED_IN)
    driver.execute_script("location.hash = '#demand'")
    demand = "const m = document.getElementById('page'); return m.dataset.ready === 'true'"
    _wait(driver, api, demand + " && m.dataset.page === 'demand'")
    text = driver.find_element(By.ID, "page").text
    assert "User does not have required permission: ml:predict" in text, text
    assert driver.execute_script(CHARTS)["canvases"] == 1  # the history is still drawn


def test_dashboard_routes(api: ApiServer) -> None:
    """The page is public; its JSON routes answer 401 without a key and a 4xx with a detail
    for bad input; lag is the broker's end offset less the stored position."""
    page = httpx.get(api.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert httpx.get(api.url + "/dashboard/vendor/uPlot.LICENSE").status_code == 200
    assert api.get("/v1/ml/dashboard/streams", headers={}).status_code == 401
    streams = api.get("/v1/ml/dashboard/streams").json()
    lags = {p["partition"]: p["lag"] for p in streams["partitions"]}
    assert streams["broker"] == "ok" and lags == {0: 9, 1: 8, 2: 7, 3: 6}
    unknown = api.get("/v1/ml/dashboard/forecasts", params={"series": "x", "domain": "weather"})
    assert unknown.status_code == 404 and unknown.json()["detail"] == "Unknown domain: weather"
    assert api.get("/dashboard/../api/app.py").status_code == 404
