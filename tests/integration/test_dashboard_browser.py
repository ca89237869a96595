"""Every dashboard page in headless Chromium: it signs in, draws its charts without a console error, shows
the numbers SQL gives, and leaves a screenshot (``TACIT_SCREENSHOTS``, e.g. docs/images/dashboard; default a
temporary directory)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import func, select

from tacit.core.db import FeedbackRow
from tests.helpers.dashboard import DashboardStore

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# page, file name, ids of the charts it must draw
PAGES = [("/", "satisfaction", ["satisfaction-chart"]), ("/labels", "labels", ["mix-chart", "reasons-chart"]),
         ("/followups", "followups", []), ("/models", "models", ["reliability-chart"]),
         ("/operations", "operations", ["dead-chart"])]


@pytest.fixture(scope="module")
def signed_in(chrome: WebDriver, dashboard_url: str, dashboard_store: DashboardStore) -> WebDriver:
    chrome.get(f"{dashboard_url}/login")
    chrome.find_element(By.NAME, "key").send_keys(dashboard_store.keys["acme"])
    chrome.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(chrome, 30).until(lambda driver: "tenant acme" in driver.find_element(By.TAG_NAME, "nav").text)
    chrome.get_log("browser")  # start each page's check with an empty log
    return chrome


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = Path(os.environ.get("TACIT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def drawn(driver: WebDriver, chart: str) -> bool:
    """Plotly drew the figure: the element holds its SVG and at least one trace."""
    return driver.execute_script(
        "const el = document.getElementById(arguments[0]);"
        "return !!el && !!el.querySelector('svg.main-svg') && (el.data || []).length > 0;", chart)


@pytest.mark.parametrize(("path", "name", "charts"), PAGES)
def test_each_page_draws_its_charts_without_console_errors(signed_in: WebDriver, dashboard_url: str,
                                                           screenshots: Path, path: str, name: str,
                                                           charts: list[str]) -> None:
    signed_in.get(dashboard_url + path)
    for chart in charts:
        WebDriverWait(signed_in, 30).until(lambda driver, chart=chart: drawn(driver, chart))
    errors = [entry for entry in signed_in.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    assert signed_in.find_element(By.TAG_NAME, "h1").text
    signed_in.save_screenshot(str(screenshots / f"{name}.png"))


def test_the_page_shows_the_numbers_sql_gives(signed_in: WebDriver, dashboard_url: str,
                                              dashboard_store: DashboardStore) -> None:
    with dashboard_store.engine.connect() as conn:
        labels = conn.scalar(select(func.count()).where(FeedbackRow.tenant == "acme",
                                                        FeedbackRow.stage.in_(("refined", "filtered"))))
    signed_in.get(dashboard_url + "/")
    assert signed_in.find_element(By.ID, "totals").text.startswith(f"{labels} labelled follow-ups")
    banners = [element.text for element in signed_in.find_elements(By.CSS_SELECTOR, "[role=alert]")]
    assert any(banner.startswith("Satisfaction alert: model-b") for banner in banners)
    traces = signed_in.execute_script("return document.getElementById('satisfaction-chart').data.length")
    assert traces == 4 * 2  # per assistant model: mean level, two shares, counts
