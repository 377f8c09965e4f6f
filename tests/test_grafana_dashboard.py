"""The Grafana dashboard (`deploy/grafana/tci-dashboard.json`) cannot drift from the services: each
query is valid PromQL (parsed by `promql-parser`), every metric it reads is one the running
services expose, every metric of ours they expose has a panel, and the file is what its source
(`deploy/grafana/dashboard.py`) writes."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, Services, auth

SOURCE = ROOT / "deploy" / "grafana" / "dashboard.py"
DASHBOARD = ROOT / "deploy" / "grafana" / "tci-dashboard.json"
# Grafana's variables, as a query is sent: a duration for the intervals, a regex for the rest.
INTERVALS = re.compile(r"\$__(rate_interval|interval|range)\b")
VARIABLES = re.compile(r"\$\{?\w+\}?")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
            "summary": ("_count", "_sum"), "gauge": ("",), "untyped": ("",)}  # fmt: skip


def _load() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", ())


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in _panels(dashboard):
        for target in panel.get("targets", ()):
            yield panel["title"], target["expr"]


def _metric_names(expr: str) -> set[str]:
    """The metrics a query selects (every vector selector's name)."""
    concrete = VARIABLES.sub("x", INTERVALS.sub("5m", expr))
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(concrete), visit)
    return names


def _exposed(services: Services) -> dict[str, set[str]]:
    """Per metric family the services expose (empty ones included: their HELP and TYPE are
    there before anything is counted), the sample names a query may select."""
    families: dict[str, set[str]] = {}
    for url in services.urls.values():
        answer = httpx.get(f"{url}/metrics", headers=auth("service"), timeout=30)
        assert answer.status_code == 200, answer.text
        for family in text_string_to_metric_families(answer.text):
            families.setdefault(family.name, set()).update(
                family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))
            )
    return families


def test_the_dashboard_file_is_what_its_source_writes() -> None:
    spec = importlib.util.spec_from_file_location("tci_grafana_dashboard", SOURCE)
    assert spec is not None and spec.loader is not None
    source = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(source)
    assert DASHBOARD.read_text(encoding="utf-8") == source.rendered(), (
        "run `python deploy/grafana/dashboard.py` and commit deploy/grafana/tci-dashboard.json"
    )


def test_every_panel_queries_the_chosen_prometheus_with_valid_promql() -> None:
    dashboard = _load()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in _panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert _metric_names(target["expr"]), (panel["title"], target["expr"])


def test_a_query_that_is_not_promql_is_refused() -> None:
    with pytest.raises(ValueError):
        _metric_names("sum by (service) (rate(http_requests_total{service=~x}[5m])")


@pytest.mark.e2e
def test_every_metric_the_dashboard_reads_is_exposed_and_every_one_of_ours_is_shown(
    services: Services,
) -> None:
    exposed = _exposed(services)
    selectable = set().union(*exposed.values())
    used: dict[str, set[str]] = {}
    for title, expr in _queries(_load()):
        for name in _metric_names(expr):
            used.setdefault(name, set()).add(title)
    unknown = {name: sorted(titles) for name, titles in used.items() if name not in selectable}
    assert unknown == {}, f"the dashboard reads metrics no service exposes: {unknown}"
    # (a counter's `_created` timestamps read as gauges of their own in the text format)
    ours = {family for family in exposed
            if family.startswith(("tci_", "http_")) and not family.endswith("_created")}  # fmt: skip
    unshown = sorted(family for family in ours if not exposed[family] & used.keys())
    assert unshown == [], f"metrics the services expose without a panel: {unshown}"
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= used.keys()
