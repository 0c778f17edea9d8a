"""The concept explorer in a real browser: Debian's chromium, headless, driven by selenium
through chromium-driver (nothing downloads a browser). The page is tests/test_explorer.py's
tiny explorer, opened from disk (file://) with no server."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_explorer import RUNS, TinyExplorer, tiny_explorer_at

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# Without the networking flags, chromium's background connections are refused on an offline
# machine many at a time.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason=f"{CHROMIUM} or {CHROMEDRIVER} is missing: apt-get install chromium chromium-driver",
    ),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


@pytest.fixture(scope="module")
def explorer(tmp_path_factory) -> TinyExplorer:
    return tiny_explorer_at(tmp_path_factory.getbasetemp() / "tiny_explorer")


@pytest.fixture(scope="module")
def driver():
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp()
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield browser
    browser.quit()
    shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, explorer: TinyExplorer, link: str = "") -> None:
    """Load the page afresh (a new document, even when only the hash differs) until it has
    painted its table and map."""
    driver.get("about:blank")
    driver.get(explorer.page.as_uri() + link)
    deadline = time.monotonic() + 30
    while driver.execute_script("return document.body.dataset.ready") != "true":
        assert time.monotonic() < deadline, "the explorer did not paint"
        time.sleep(0.05)


def severe_logs(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def panel_atom(driver) -> int:
    return int(driver.find_element(By.CSS_SELECTOR, "#panel h2").get_attribute("data-atom"))


def top_items(driver) -> list[str]:
    return [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#panel .top-items li")]


def busiest_atom(driver) -> int:
    """The atom with the most top items, so its panel has something to show."""
    return driver.execute_script(
        """const run = window.VLMSAE_EXPLORER; const data = window.VLMSAE_RUNS[run.state.run];
        const k = data.top.k; let best = 0, most = -1;
        for (let a = 0; a < data.n_atoms; a++) {
          let n = 0;
          for (let j = 0; j < k; j++) n += data.top.text.items[a * k + j] >= 0;
          if (n > most) { most = n; best = a; }
        }
        return best;"""
    )


def test_page_loads_without_console_errors(driver, explorer):
    open_page(driver, explorer)
    assert severe_logs(driver) == []
    assert driver.find_elements(By.CSS_SELECTOR, ".atom-row")
    assert driver.find_element(By.ID, "count").text == "32 of 32 atoms"
    assert not driver.find_element(By.ID, "message").is_displayed()


def test_the_health_of_the_run_is_shown_beside_its_selectors(driver, explorer):
    open_page(driver, explorer, f"#run={RUNS[0]}")
    health = driver.find_element(By.ID, "run-health")
    assert health.text.startswith("health: r2 0.") and "flagged" in health.get_attribute("class")
    open_page(driver, explorer, f"#run={RUNS[1]}")
    health = driver.find_element(By.ID, "run-health")
    assert health.text == "health: ok" and "flagged" not in health.get_attribute("class")


def test_clicking_a_point_on_the_map_selects_that_atom(driver, explorer):
    open_page(driver, explorer)
    canvas = driver.find_element(By.ID, "map")
    atom = busiest_atom(driver)
    # Another atom drawn on the same pixel would be as near: the test needs one apart.
    alone = driver.execute_script(
        """const map = window.VLMSAE_EXPLORER.map; const p = map.project(arguments[0]);
        return map.atomAt(p.x, p.y) === arguments[0] ? p : null;""",
        atom,
    )
    assert alone is not None, f"atom {atom} shares its pixel with another"
    offset = (alone["x"] - canvas.size["width"] / 2, alone["y"] - canvas.size["height"] / 2)
    ActionChains(driver).move_to_element_with_offset(canvas, *offset).click().perform()
    assert panel_atom(driver) == atom
    assert top_items(driver)
    assert driver.execute_script("return location.hash").endswith(f"atom={atom}")


def test_clicking_a_table_row_selects_that_atom(driver, explorer):
    open_page(driver, explorer)
    row = driver.find_elements(By.CSS_SELECTOR, ".atom-row")[2]
    atom = int(row.get_attribute("data-atom"))
    row.click()
    assert panel_atom(driver) == atom
    assert top_items(driver)
    selected = driver.find_elements(By.CSS_SELECTOR, ".atom-row.selected")
    assert [int(element.get_attribute("data-atom")) for element in selected] == [atom]


def test_search_filters_atoms_by_their_top_captions(driver, explorer):
    open_page(driver, explorer)
    atom = busiest_atom(driver)
    driver.find_element(By.CSS_SELECTOR, f".atom-row[data-atom='{atom}']").click()
    caption = top_items(driver)[-1]
    word = [word for word in caption.split() if word.startswith("concept")][0]
    search = driver.find_element(By.ID, "search")
    search.send_keys(word)
    shown = [int(row.get_attribute("data-atom")) for row in driver.find_elements(
        By.CSS_SELECTOR, ".atom-row")]  # fmt: skip
    count = int(driver.find_element(By.ID, "count").text.split()[0])
    assert atom in shown and 0 < count < 32 and len(shown) == count
    for other in shown:  # each shown atom has the word in one of its top captions
        driver.find_element(By.CSS_SELECTOR, f".atom-row[data-atom='{other}']").click()
        assert any(word in item for item in top_items(driver))
    search.clear()
    search.send_keys("no caption says this")
    assert driver.find_element(By.ID, "count").text == "0 of 32 atoms"
    assert severe_logs(driver) == []


def test_deep_link_reopens_the_same_run_and_atom(driver, explorer):
    open_page(driver, explorer, f"#run={RUNS[1]}&atom=7")
    assert panel_atom(driver) == 7
    assert driver.find_element(By.ID, "select-seed").get_attribute("value") == "1"
    assert RUNS[1] in driver.find_element(By.CSS_SELECTOR, "#panel .hint").text
    driver.find_element(By.CSS_SELECTOR, ".atom-row:not(.selected)").click()
    atom, link = panel_atom(driver), driver.execute_script("return location.hash")
    items = top_items(driver)
    open_page(driver, explorer, link)
    assert panel_atom(driver) == atom and top_items(driver) == items
    assert driver.find_element(By.CSS_SELECTOR, ".atom-row.selected").get_attribute(
        "data-atom"
    ) == str(atom)


def test_selectors_switch_runs(driver, explorer):
    open_page(driver, explorer)
    driver.find_element(By.CSS_SELECTOR, "#select-mixture option[value='5-1']").click()
    deadline = time.monotonic() + 10
    while "5-1" not in driver.execute_script("return location.hash"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert driver.execute_script("return window.VLMSAE_EXPLORER.state.run") == RUNS[2]
    # That run's atoms.parquet has names: the table shows them, the panel their cosine and
    # runner-up.
    assert "name" in driver.find_element(By.CSS_SELECTOR, ".table-head").text
    driver.find_element(By.CSS_SELECTOR, ".atom-row").click()
    deadline = time.monotonic() + 10
    while "runner-up name" not in driver.find_element(By.ID, "panel").text:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "name cosine" in driver.find_element(By.ID, "panel").text


@pytest.mark.parametrize("link", ["#atom=999", f"#run={RUNS[0]}&atom=-3", "#atom=seven"])
def test_an_atom_out_of_range_is_a_message_not_a_blank_page(driver, explorer, link):
    open_page(driver, explorer, link)
    message = driver.find_element(By.ID, "message")
    assert message.is_displayed()
    assert "is not in run" in message.text and "32 atoms (0 to 31)" in message.text
    assert driver.find_elements(By.CSS_SELECTOR, ".atom-row")
    assert severe_logs(driver) == []


def test_an_unknown_run_falls_back_to_the_first_with_a_message(driver, explorer):
    open_page(driver, explorer, "#run=nope/1-1/seed9&atom=3")
    assert "not in this explorer" in driver.find_element(By.ID, "message").text
    assert panel_atom(driver) == 3


def test_screenshot_is_not_blank(driver, explorer, tmp_path):
    open_page(driver, explorer, f"#run={RUNS[0]}&atom={3}")
    path = tmp_path / "explorer.png"
    driver.save_screenshot(str(path))
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 20
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    box = driver.find_element(By.ID, "map").rect  # the map: points in several colours
    map_pixels = pixels[int(box["y"]) : int(box["y"] + box["height"]),
                        int(box["x"]) : int(box["x"] + box["width"])]  # fmt: skip
    assert len(np.unique(map_pixels.reshape(-1, 3), axis=0)) > 10


def test_a_missing_run_file_is_a_message_not_a_blank_page(driver, explorer, tmp_path):
    copy = tmp_path / "explorer"
    shutil.copytree(explorer.page.parent, copy)
    (missing,) = copy.glob(f"runs/*{RUNS[1].replace('/', '_')}.js")
    missing.unlink()
    open_page(driver, TinyExplorer(copy / "index.html", explorer.store, [], explorer.results))
    driver.find_element(By.CSS_SELECTOR, "#select-seed option[value='1']").click()
    message = driver.find_element(By.ID, "message")
    deadline = time.monotonic() + 10
    while not message.is_displayed():
        assert time.monotonic() < deadline, "no message for the missing run file"
        time.sleep(0.05)
    assert f"runs/{missing.name} did not load: rebuild the explorer" in message.text
    assert driver.find_elements(By.CSS_SELECTOR, ".atom-row")  # the first run stays shown
