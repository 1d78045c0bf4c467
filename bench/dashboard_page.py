#!/usr/bin/env python3
"""Times the dashboard page in Debian's headless Chromium on a loaded taskhubd (bench/dashboard.sh runs it when
DASHBOARD_VENV names a virtualenv with Selenium, e.g. build-test/dashboard-venv from the dashboard tests):

  RESULT scenario=dashboard_page_<what> instances=<N> p50_ms p95_ms p99_ms events=<n>

list: opening / until the first page's rows are drawn; instance: opening the instance with the longest history until
its timeline and the first 500 history rows are drawn (every event fetched); all_rows: "Show all events" until
every row is in the table.
usage: dashboard_page.py OPS_HOST:PORT INSTANCES INSTANCE_ID EVENTS [RUNS]
"""

import statistics
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ops, n, iid, events = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
runs = int(sys.argv[5]) if len(sys.argv) > 5 else 5
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
profile = tempfile.TemporaryDirectory()
for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--window-size=1360,1000", f"--user-data-dir={profile.name}"):
    opts.add_argument(a)
d = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)


def timed(url, cond):
    t = time.perf_counter()
    d.get(url)
    WebDriverWait(d, 300, poll_frequency=0.01).until(lambda _: cond())
    return (time.perf_counter() - t) * 1e3


def report(what, ms, extra=""):
    ms = sorted(ms)
    print(f"RESULT scenario=dashboard_page_{what} instances={n} p50_ms={statistics.median(ms):.0f} "
          f"p95_ms={ms[int(0.95 * (len(ms) - 1))]:.0f} p99_ms={ms[-1]:.0f}{extra}", flush=True)


try:
    base = f"http://{ops}"
    # counted in the page: fetching thousands of element references over WebDriver would cost more than drawing them
    count = lambda sel: d.execute_script("return document.querySelectorAll(arguments[0]).length", sel)  # noqa: E731
    report("list", [timed(base + "/", lambda: count("#instances tbody tr[data-id]") == 50) for _ in range(runs)])
    bars = []
    ms = []
    for _ in range(runs):
        ms.append(timed(f"{base}/?view=instance&id={iid}",
                        lambda: count("#history tbody tr.ev") == min(500, events) and count("#timeline .tl-bar") > 0
                        and d.execute_script("return document.getElementById('h-count').textContent") ==
                        f"({events} events)"))
        bars.append(count("#timeline .tl-bar"))
    report("instance", ms, f" events={events} bars={bars[-1]}")
    ms = []
    for _ in range(runs):
        timed(f"{base}/?view=instance&id={iid}", lambda: count("#history tbody tr.ev") == min(500, events))
        t = time.perf_counter()
        d.find_element(By.ID, "h-more").click()
        WebDriverWait(d, 300, poll_frequency=0.01).until(lambda _: count("#history tbody tr.ev") == events)
        ms.append((time.perf_counter() - t) * 1e3)
    report("all_rows", ms, f" events={events}")
finally:
    d.quit()
