"""Fixtures of the dashboard tests: the ops tests' servers (tests/ops/conftest.py: a real taskhubd per test on
free ports, stopped with SIGTERM at teardown and checked for sanitizer reports) and workers, plus HTTP helpers
for the dashboard's API."""

import importlib.util
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

_spec = importlib.util.spec_from_file_location("ops_support", Path(__file__).resolve().parents[1] / "ops" / "conftest.py")
ops = importlib.util.module_from_spec(_spec)
sys.modules["ops_support"] = ops
_spec.loader.exec_module(ops)

server_factory = ops.server_factory
workers = ops.workers
pytest_collection_modifyitems = ops.pytest_collection_modifyitems
make_worker = ops.make_worker
make_client = ops.make_client
wait_until = ops.wait_until

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ACTION_HEADERS = {"Content-Type": "application/json", "X-Taskhubd-Admin": "dashboard"}


def request(server, method, path, params=None, body=None, headers=None, token=None, timeout=30.0):
    """One request to the ops port; returns (status, parsed JSON or text, headers)."""
    url = f"http://127.0.0.1:{server.ops_port}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with _HTTP.open(req, timeout=timeout) as r:
            status, raw, hdrs = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), e.headers
    text = raw.decode("utf-8", errors="replace")
    if hdrs.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(text), hdrs
    return status, text, hdrs


def api(server, path, token=None, **params):
    return request(server, "GET", "/api/v1/" + path, params=params or None, token=token)


def action(server, name, body, token=None, headers=ACTION_HEADERS):
    return request(server, "POST", "/api/v1/actions/" + name, body=body, headers=headers, token=token)
