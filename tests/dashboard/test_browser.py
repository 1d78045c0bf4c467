"""The dashboard in a real headless browser: Debian's Chromium (/usr/bin/chromium) driven through
/usr/bin/chromedriver by Selenium, against a real taskhubd with the Python SDK's worker.

  test_list_filters_and_deep_links   the list shows every instance with counts; filtering by status and by id
                                     prefix puts the filters in the URL; a deep link opens with its filters
  test_instance_timeline             an instance page shows a timeline bar per activity (a failed try and its
                                     retry marked), per sub-orchestration, and per external event; the history
                                     table expands an event; a failed instance shows its stack trace
  test_actions_and_live_updates      a new instance appears in the open list without a reload; raising an event
                                     and terminating from the page, each confirmed, show the new status
  test_entities_view                 the entities, filtered by id prefix
  test_token_refused                 with --auth-token-file the page shows no data until it is given the token

Screenshots go to $DASHBOARD_SCREENSHOTS when set (docs/images for docs/dashboard.md), else to the test's tmp dir.
"""

from datetime import datetime, timedelta, timezone
import json
import os
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from conftest import api, make_client, wait_until
from workload import start_worker

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 30


@pytest.fixture
def browser(tmp_path):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    assert not missing, f"{missing} not installed: apt-get install chromium chromium-driver (scripts/install-deps.sh)"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1360,1000", f"--user-data-dir={tmp_path / 'chromium'}"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield d
        # the page never threw: anything the console logged at SEVERE fails the test
        severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE" and "401" not in e["message"]]
        assert not severe, severe
    finally:
        d.quit()


@pytest.fixture
def shots(tmp_path):
    out = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)

    def take(d, name):
        path = out / f"dashboard-{name}.png"
        assert d.save_screenshot(str(path)), path
        assert path.stat().st_size > 10000, path
    return take


def until(d, fn, what):
    try:
        # the page redraws what the server pushes: an element found a moment ago may be gone, so look again
        return WebDriverWait(d, WAIT_S, poll_frequency=0.05,
                             ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(
            lambda _: fn())
    except Exception as e:  # noqa: BLE001 - report what was awaited, with the page's state
        raise AssertionError(f"timed out waiting for {what}; url={d.current_url}\n"
                             f"{d.find_element(By.TAG_NAME, 'body').text[:2000]}") from e


def click(d, element_id):
    """Clicks #element_id, looking it up again if a redraw replaced it in between."""
    until(d, lambda: d.find_element(By.ID, element_id).click() or True, f"a click on #{element_id}")


def rows(d):
    return [(r.get_attribute("data-id"), r.get_attribute("data-status"))
            for r in d.find_elements(By.CSS_SELECTOR, "#instances tbody tr[data-id]")]


def ids(d):
    return sorted(i for i, _ in rows(d))


def base(s):
    return f"http://127.0.0.1:{s.ops_port}"


def done(c, iid):
    st = c.wait_for_orchestration_completion(iid, timeout=60)
    assert st is not None
    return st


def running(s, iid):
    wait_until(lambda: api(s, "instance", id=iid)[1].get("status") == "RUNNING", 60, f"{iid} running")


def test_list_filters_and_deep_links(server_factory, workers, browser, shots):
    s = server_factory.start()
    start_worker(s, workers)
    with make_client(s) as c:
        for i in range(4):
            c.schedule_new_orchestration("d_chain", input=f"order {i}", instance_id=f"order-{i}")
        for i in range(2):
            c.schedule_new_orchestration("d_chain", input=f"invoice {i}", instance_id=f"invoice-{i}")
        c.schedule_new_orchestration("d_wait", instance_id="approval-1")
        c.schedule_new_orchestration("d_fail", input=3, instance_id="payment-1")
        c.schedule_new_orchestration("d_parent", input=2, instance_id="batch-1")
        for iid in ("order-0", "order-1", "order-2", "order-3", "invoice-0", "invoice-1", "payment-1", "batch-1"):
            done(c, iid)
        running(s, "approval-1")
    everything = sorted(["order-0", "order-1", "order-2", "order-3", "invoice-0", "invoice-1", "approval-1",
                         "payment-1", "batch-1", "batch-1-c0", "batch-1-c1"])
    d = browser
    d.get(base(s) + "/")
    until(d, lambda: ids(d) == everything, "every instance in the list")
    until(d, lambda: d.find_element(By.ID, "count-ALL").text.startswith("11"), "the instance count")
    assert d.find_element(By.ID, "count-FAILED").text.startswith("1")
    until(d, lambda: "live" == d.find_element(By.ID, "live").text, "the live stream")
    shots(d, "list")

    # filter by status: the list and the URL follow
    Select(d.find_element(By.ID, "f-status")).select_by_visible_text("FAILED")
    d.find_element(By.ID, "f-apply").click()
    until(d, lambda: ids(d) == ["payment-1"], "the FAILED filter")
    assert "status=FAILED" in d.current_url
    # by id prefix (status cleared)
    d.find_element(By.ID, "f-clear").click()
    until(d, lambda: ids(d) == everything, "the cleared filter")
    d.find_element(By.ID, "f-prefix").send_keys("order-")
    d.find_element(By.ID, "f-apply").click()
    until(d, lambda: ids(d) == ["order-0", "order-1", "order-2", "order-3"], "the prefix filter")
    assert "prefix=order-" in d.current_url
    # under a prefix the id column is the server's order: newest-first lists ids in reverse, and a click on its
    # header asks the server for the other direction (kept in the URL, so across pages)
    order = lambda: [i for i, _ in rows(d)]  # noqa: E731
    until(d, lambda: order() == ["order-3", "order-2", "order-1", "order-0"], "ids in reverse order")
    d.find_element(By.CSS_SELECTOR, "th[data-col=id]").click()
    until(d, lambda: order() == ["order-0", "order-1", "order-2", "order-3"], "ids in order")
    assert "direction=asc" in d.current_url
    d.find_element(By.CSS_SELECTOR, "th[data-col=id]").click()
    until(d, lambda: order() == ["order-3", "order-2", "order-1", "order-0"], "ids in reverse order again")
    assert "direction" not in d.current_url
    # another column sorts the page shown
    d.find_element(By.CSS_SELECTOR, "th[data-col=createdAt]").click()
    until(d, lambda: order() == ["order-0", "order-1", "order-2", "order-3"], "sorted by created")
    d.find_element(By.CSS_SELECTOR, "th[data-col=createdAt]").click()
    until(d, lambda: order() == ["order-3", "order-2", "order-1", "order-0"], "sorted by created, desc")
    # back goes to the previous list, then to the one before the filter
    d.back()
    until(d, lambda: order() == ["order-0", "order-1", "order-2", "order-3"] and "direction=asc" in d.current_url,
          "back to ids in order")
    d.back()
    d.back()
    until(d, lambda: ids(d) == everything, "back to the unfiltered list")

    # newest first across pages; the Created header turns it to oldest first, and the next page continues there
    d.get(base(s) + "/?pageSize=4")
    until(d, lambda: len(rows(d)) == 4, "a page of four")
    assert Select(d.find_element(By.ID, "f-pageSize")).first_selected_option.text == "4"
    assert Select(d.find_element(By.ID, "f-direction")).first_selected_option.text == "newest first"
    header = lambda: d.find_element(By.CSS_SELECTOR, "th[data-col=createdAt]").get_attribute("class")  # noqa: E731
    assert header().split() == ["sorted", "desc"], header()
    newest = order()
    assert set(newest) == {"batch-1-c0", "batch-1-c1", "batch-1", "payment-1"}, newest
    assert newest[2:] == ["batch-1", "payment-1"], newest
    d.find_element(By.CSS_SELECTOR, "th[data-col=createdAt]").click()
    until(d, lambda: order() == ["order-0", "order-1", "order-2", "order-3"], "the oldest four")
    assert "direction=asc" in d.current_url
    until(d, lambda: header().split() == ["sorted"], "the Created header marked ascending")
    click(d, "next-page")
    until(d, lambda: order() == ["invoice-0", "invoice-1", "approval-1", "payment-1"], "the next four oldest")
    shots(d, "list-oldest-first")

    # deep links: a fresh page opens with the filters of its URL
    d.get(base(s) + "/?status=RUNNING")
    until(d, lambda: rows(d) == [("approval-1", "RUNNING")], "the deep link's status filter")
    assert [o.text for o in Select(d.find_element(By.ID, "f-status")).all_selected_options] == ["RUNNING"]
    d.get(base(s) + "/?prefix=invoice-&status=COMPLETED")
    until(d, lambda: ids(d) == ["invoice-0", "invoice-1"], "the deep link's prefix and status")
    assert d.find_element(By.ID, "f-prefix").get_attribute("value") == "invoice-"
    # paging through the page size
    d.get(base(s) + "/?pageSize=25")
    until(d, lambda: len(rows(d)) == 11, "pageSize in the URL")
    # following an instance link goes to its page
    d.find_element(By.LINK_TEXT, "batch-1").click()
    until(d, lambda: d.find_element(By.ID, "i-title").text.startswith("batch-1"), "the instance page")
    assert "view=instance" in d.current_url and "id=batch-1" in d.current_url


def bars(d, kind):
    return d.find_elements(By.CSS_SELECTOR, f"#timeline .tl-bar[data-kind={kind}]")


def test_instance_timeline(server_factory, workers, browser, shots):
    s = server_factory.start()
    start_worker(s, workers)
    with make_client(s) as c:
        c.schedule_new_orchestration("d_chain", input="world", instance_id="tl-chain")
        c.schedule_new_orchestration("d_retry", input="tl-retry", instance_id="tl-retry")
        c.schedule_new_orchestration("d_parent", input=3, instance_id="tl-parent")
        c.schedule_new_orchestration("d_fail", input=9, instance_id="tl-fail")
        c.schedule_new_orchestration("d_wait", instance_id="tl-wait")
        for iid in ("tl-chain", "tl-retry", "tl-parent", "tl-fail"):
            done(c, iid)
        running(s, "tl-wait")
        c.raise_orchestration_event("tl-wait", "go", data="approved")
        done(c, "tl-wait")
        c.schedule_new_orchestration("d_chain", instance_id="tl-later",
                                     start_at=datetime.now(timezone.utc) + timedelta(hours=1))
    d = browser

    # a PENDING instance says why it has not started
    d.get(base(s) + "/?view=instance&id=tl-later")
    until(d, lambda: d.find_elements(By.ID, "i-not-started"), "the reason it has not started")
    assert d.find_element(By.ID, "i-not-started").text == "it is PENDING, scheduled to start later"

    d.get(base(s) + "/?view=instance&id=tl-chain")
    until(d, lambda: len(bars(d, "activity")) == 2, "a bar per activity")
    assert [b.get_attribute("data-name") for b in bars(d, "activity")] == ["d_hello", "d_hello"]
    assert all(b.get_attribute("data-failed") == "0" and b.get_attribute("data-running") == "0" and
               "retry" not in b.get_attribute("class") for b in bars(d, "activity"))
    assert len(bars(d, "execution")) == 1
    assert d.find_element(By.CSS_SELECTOR, "#i-title .st").text == "COMPLETED"
    assert json.loads(d.find_element(By.ID, "p-output").text) == "Hello Hello world"
    n = api(s, "instance", id="tl-chain")[1]["historyLength"]
    hist = d.find_elements(By.CSS_SELECTOR, "#history tbody tr.ev")
    assert len(hist) == n
    hist[1].click()
    until(d, lambda: d.find_elements(By.CSS_SELECTOR, "#history tr.detail pre"), "an expanded event")
    assert '"eventId"' in d.find_element(By.CSS_SELECTOR, "#history tr.detail pre").text or \
        '"timestamp"' in d.find_element(By.CSS_SELECTOR, "#history tr.detail pre").text

    d.get(base(s) + "/?view=instance&id=tl-retry")
    until(d, lambda: len(bars(d, "activity")) == 2, "the try and its retry")
    first, retry = bars(d, "activity")
    assert first.get_attribute("data-failed") == "1" and "retry" not in first.get_attribute("class")
    assert retry.get_attribute("data-failed") == "0" and "retry" in retry.get_attribute("class")
    assert len(bars(d, "timer")) >= 1  # the retry's delay
    shots(d, "retry")

    d.get(base(s) + "/?view=instance&id=tl-parent")
    until(d, lambda: len(bars(d, "suborchestration")) == 3, "a bar per sub-orchestration")
    assert not any("retry" in b.get_attribute("class") for b in bars(d, "suborchestration"))  # parallel, not retried
    until(d, lambda: len(d.find_elements(By.CSS_SELECTOR, "#i-tree li[data-id]")) == 3, "the children tree")
    shots(d, "instance")

    d.get(base(s) + "/?view=instance&id=tl-wait")
    until(d, lambda: [b.get_attribute("data-name") for b in bars(d, "event")] == ["go"], "the external event's bar")

    d.get(base(s) + "/?view=instance&id=tl-fail")
    until(d, lambda: d.find_elements(By.ID, "p-failure"), "the failure")
    text = d.find_element(By.ID, "p-failure").text
    assert "boom 9" in text and "line" in text, text  # the message and its stack trace
    assert bars(d, "activity")[0].get_attribute("data-failed") == "1"
    assert d.find_elements(By.CSS_SELECTOR, "#history tr.ev.failed")
    shots(d, "failed")


def test_actions_and_live_updates(server_factory, workers, browser, shots):
    s = server_factory.start()
    start_worker(s, workers)
    d = browser
    d.get(base(s) + "/")
    until(d, lambda: d.find_element(By.ID, "live").text == "live", "the live stream")
    with make_client(s) as c:
        c.schedule_new_orchestration("d_wait", instance_id="act-raise")
        c.schedule_new_orchestration("d_wait", instance_id="act-term")
        # no reload: the rows come from the event stream
        until(d, lambda: sorted(rows(d)) == [("act-raise", "RUNNING"), ("act-term", "RUNNING")],
              "the new instances, live")

        d.find_element(By.LINK_TEXT, "act-raise").click()
        until(d, lambda: d.find_element(By.CSS_SELECTOR, "#i-title .st").text == "RUNNING", "act-raise running")
        click(d, "act-raise")
        until(d, lambda: d.find_element(By.ID, "dialog").is_displayed(), "the confirmation dialog")
        d.find_element(By.ID, "d-name").send_keys("go")
        d.find_element(By.ID, "d-input").send_keys('{"approved": true}')
        shots(d, "raise")
        d.find_element(By.ID, "dialog-confirm").click()
        until(d, lambda: d.find_element(By.ID, "dialog-result").text.startswith("Done"), "the server's answer")
        d.find_element(By.ID, "dialog-cancel").click()
        until(d, lambda: d.find_element(By.CSS_SELECTOR, "#i-title .st").text == "COMPLETED", "act-raise completed")
        until(d, lambda: json.loads(d.find_element(By.ID, "p-output").text) == {"approved": True}, "the output")
        assert done(c, "act-raise").runtime_status.name == "COMPLETED"

        d.get(base(s) + "/?view=instance&id=act-term")
        until(d, lambda: d.find_element(By.CSS_SELECTOR, "#i-title .st").text == "RUNNING", "act-term running")
        click(d, "act-terminate")
        until(d, lambda: d.find_element(By.ID, "dialog").is_displayed(), "the confirmation dialog")
        d.find_element(By.ID, "d-output").send_keys('"stopped from the dashboard"')
        d.find_element(By.ID, "dialog-confirm").click()
        until(d, lambda: d.find_element(By.ID, "dialog-result").text.startswith("Done"), "the server's answer")
        d.find_element(By.ID, "dialog-cancel").click()
        until(d, lambda: d.find_element(By.CSS_SELECTOR, "#i-title .st").text == "TERMINATED", "act-term terminated")
        assert done(c, "act-term").runtime_status.name == "TERMINATED"
        # restart the terminated instance under a new id
        click(d, "act-restart")
        d.find_element(By.ID, "d-newInstanceId").click()
        d.find_element(By.ID, "dialog-confirm").click()
        until(d, lambda: d.find_element(By.ID, "dialog-result").text.startswith("Done"), "the restart")
        d.find_element(By.ID, "dialog-cancel").click()
        shots(d, "terminated")


def test_token_refused(server_factory, browser, shots, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("browser-s3cret\n")
    s = server_factory.start("--auth-token-file", str(tokens))
    with make_client_token(s, "browser-s3cret") as c:
        c.schedule_new_orchestration("d_chain", input="t", instance_id="tok-1")
    d = browser
    d.get(base(s) + "/")
    until(d, lambda: d.find_element(By.ID, "auth").is_displayed(), "the token prompt")
    assert not d.find_element(By.ID, "main").is_displayed()
    assert rows(d) == []
    shots(d, "token")
    d.find_element(By.ID, "auth-token").send_keys("wrong")
    d.find_element(By.ID, "auth-submit").click()
    until(d, lambda: "refused" in d.find_element(By.ID, "auth-error").text, "the refusal of a wrong token")
    assert rows(d) == []
    d.find_element(By.ID, "auth-token").clear()
    d.find_element(By.ID, "auth-token").send_keys("browser-s3cret")
    d.find_element(By.ID, "auth-submit").click()
    until(d, lambda: ids(d) == ["tok-1"], "the list, with the token")


def make_client_token(server, token):
    """A client that sends the bearer token (the SDK's metadata option)."""
    from durabletask.client import TaskHubGrpcClient
    from durabletask.grpc_options import GrpcChannelOptions
    from conftest import ops
    return TaskHubGrpcClient(host_address=server.address, metadata=[("authorization", f"Bearer {token}")],
                             channel_options=GrpcChannelOptions(raw_options=ops.CHANNEL_OPTIONS))


def test_entities_view(server_factory, browser):
    from durabletask.entities import EntityInstanceId
    s = server_factory.start()
    with make_client(s) as c:
        for key in ("alice", "bob"):
            c.signal_entity(EntityInstanceId("account", key), "deposit", input=10)
        c.signal_entity(EntityInstanceId("counter", "one"), "add", input=1)
    d = browser
    d.get(base(s) + "/")
    until(d, lambda: d.find_element(By.ID, "live").text == "live", "the page")
    d.find_element(By.ID, "nav-entities").click()
    entity_ids = lambda: [r.get_attribute("data-id")  # noqa: E731
                          for r in d.find_elements(By.CSS_SELECTOR, "#entities tbody tr[data-id]")]
    until(d, lambda: entity_ids() == ["@account@alice", "@account@bob", "@counter@one"], "every entity")
    assert "view=entities" in d.current_url
    d.find_element(By.ID, "e-prefix").send_keys("account@b")
    d.find_element(By.ID, "e-apply").click()
    until(d, lambda: entity_ids() == ["@account@bob"], "the prefix filter")
    assert "prefix=account%40b" in d.current_url or "prefix=account@b" in d.current_url
