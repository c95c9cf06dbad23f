#!/usr/bin/python3
"""The status page in headless Chromium (Debian's chromium and chromium-driver, through Selenium).

Usage: browser.py BASE_URL AXE_JS OUT_DIR check|host|bench

check: the page loads with no console error (a missing favicon is one); it shows the served ISO, a
fleet host and guests in their known states (tests/status/state.sh); an install event posted for a
fleet host and for a guest shows without a reload; axe-core finds nothing serious; with JavaScript
off the tables are there all the same. Screenshots go to OUT_DIR. Prints its figures.
host: on an installed host, the guest named by $GUEST shows running with a non-zero CPU.
bench: with many guests, time to first paint, page weight, and the cost of one update.
"""
import json
import os
import sys
import time
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

BASE, AXE, OUT, MODE = sys.argv[1:5]
os.makedirs(OUT, exist_ok=True)


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def browser(javascript=True):
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1800"):
        opts.add_argument(a)
    opts.binary_location = "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not javascript:
        opts.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def wait(what, cond, secs=20):
    end = time.time() + secs
    while time.time() < end:
        try:
            v = cond()
            if v:
                return v
        except Exception:  # an element swapped out under us: ask again
            pass
        time.sleep(0.2)
    fail(f"{what}: not within {secs} s")


def state(d, row_id):
    return d.find_element(By.ID, row_id).get_attribute("data-state")


def console_errors(d):
    return [e for e in d.get_log("browser") if e["level"] == "SEVERE"]


def post(url, body):
    req = urllib.request.Request(url, data=body.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode().strip()


def get(path):
    with urllib.request.urlopen(BASE + path, timeout=30) as r:
        return r.read().decode()


def paint_and_weight(d):
    # The paint entry comes a moment after the load.
    fcp = wait("first contentful paint", lambda: d.execute_script(
        "const p = performance.getEntriesByName('first-contentful-paint')[0]; return p ? p.startTime : null;"))
    weight = d.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return [n, ...performance.getEntriesByType('resource')].reduce((s, e) => s + (e.encodedBodySize || 0), 0);")
    return fcp, weight


def axe(d):
    with open(AXE) as f:
        d.execute_script(f.read())
    result = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations)).catch(e => done(String(e)));")
    if isinstance(result, str):
        fail(f"axe-core: {result}")
    for v in result:
        print(f"  axe: {v['impact']}: {v['id']}: {v['help']} ({len(v['nodes'])} nodes)")
    return [v for v in result if v["impact"] in ("serious", "critical")]


def check():
    d = browser()
    try:
        d.get(BASE + "/ui/")
        wait("the page", lambda: d.execute_script("return document.readyState") == "complete")
        fcp, weight = paint_and_weight(d)
        d.save_screenshot(f"{OUT}/status-page.png")
        if state(d, "guest-web1") != "installed":
            fail(f"web1 is {state(d, 'guest-web1')}, not installed")
        if state(d, "guest-web3") != "failed":
            fail("web3 is not shown failed")
        if "no network" not in d.find_element(By.ID, "guest-web3").text and \
                "no network" not in d.find_element(By.ID, "install-web3").get_attribute("textContent"):
            fail("web3's failure message is not on the page")
        if state(d, "host-rack-a1") != "armed":
            fail("rack-a1 is not shown armed")
        iso = d.find_element(By.ID, "iso-installer").text
        if "XENPROV_TEST" not in iso:
            fail(f"the ISO row does not say what it holds: {iso!r}")
        if "No Xen here" not in d.find_element(By.ID, "no-xen").text:
            fail("the page does not say there is no Xen")

        # Events arrive; the page shows them without a reload.
        d.execute_script("window.notReloaded = true;")
        before = int(d.execute_script("return document.body.dataset.updates || 0"))
        script = get("/ipxe?mac=52%3A54%3A00%3Aac%3A01%3A01&uuid=&serial=")
        events = next(w.split("=", 1)[1] for w in script.split() if w.startswith("xenprov.events="))
        if post(events, "started") != "installing":
            fail("the fleet event was not taken")
        if post(f"{BASE}/events/web2/{os.environ['TOKEN']}", "started") != "installing":
            fail("the guest event was not taken")
        t0 = time.time()
        wait("rack-a1 installing on the page", lambda: state(d, "host-rack-a1") == "installing")
        wait("web2's started event on the page",
             lambda: "started" in d.find_element(By.ID, "install-web2").get_attribute("textContent"))
        shown_after = time.time() - t0
        if not d.execute_script("return window.notReloaded === true"):
            fail("the page reloaded")
        if int(d.execute_script("return document.body.dataset.updates || 0")) <= before:
            fail("no update was swapped in")
        d.save_screenshot(f"{OUT}/status-page-updated.png")

        errors = console_errors(d)
        if errors:
            fail(f"console errors: {errors}")
        serious = axe(d)
        if serious:
            fail(f"axe-core: {len(serious)} serious or critical findings")

        t = []
        for _ in range(20):
            s = time.perf_counter()
            json.loads(get("/api/status"))
            t.append((time.perf_counter() - s) * 1000)
        t.sort()
        print(f"first contentful paint {fcp:.0f} ms; page weight {weight} bytes; "
              f"event to page {shown_after:.1f} s; /api/status median {t[10]:.1f} ms")
    finally:
        d.quit()

    # Without JavaScript, the same tables.
    d = browser(javascript=False)
    try:
        d.get(BASE + "/ui/")
        if state(d, "host-rack-a1") != "installing" or not d.find_elements(By.ID, "guest-web1"):
            fail("without JavaScript the tables are not there")
        d.save_screenshot(f"{OUT}/status-page-no-js.png")
    finally:
        d.quit()


def host():
    guest = os.environ["GUEST"]
    d = browser()
    try:
        d.get(BASE + "/ui/")
        wait(f"{guest} running with CPU",
             lambda: state(d, f"guest-{guest}") == "running" and d.find_element(
                 By.CSS_SELECTOR, f"#guest-{guest} td.graph").get_attribute("data-cpu") not in ("", "0.0%"),
             secs=60)
        cpu = d.find_element(By.CSS_SELECTOR, f"#guest-{guest} td.graph").get_attribute("data-cpu")
        d.save_screenshot(f"{OUT}/status-page-host.png")
        errors = console_errors(d)
        if errors:
            fail(f"console errors: {errors}")
        print(f"{guest}: running, CPU {cpu}")
    finally:
        d.quit()


def bench():
    d = browser()
    try:
        t0 = time.perf_counter()
        d.get(BASE + "/ui/")
        load = (time.perf_counter() - t0) * 1000
        fcp, weight = paint_and_weight(d)
        rows = len(d.find_elements(By.CSS_SELECTOR, "#guests tbody tr"))
        n = int(d.execute_script("return document.body.dataset.updates || 0"))
        wait("an update", lambda: int(d.execute_script("return document.body.dataset.updates || 0")) > n + 2, 30)
        swap = float(d.execute_script("return document.body.dataset.swapMs"))
        print(json.dumps({"rows": rows, "load_ms": round(load), "first_paint_ms": round(fcp),
                          "page_bytes": weight, "swap_ms": swap}))
    finally:
        d.quit()


{"check": check, "host": host, "bench": bench}[MODE]()
