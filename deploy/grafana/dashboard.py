"""The Grafana dashboard of the three services, written as data: `python deploy/grafana/dashboard.py`
rewrites `tci-dashboard.json` beside it (import it in Grafana, or provision it). The Prometheus
data source is a variable, chosen when the dashboard is opened; `service` narrows the panels that
carry that label. `tests/test_grafana_dashboard.py` fails when the file differs from what this
writes, and when a query names a metric the services do not expose."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DASHBOARD = HERE / "tci-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SERVICE = 'service=~"$service"'
WIDTH, HEIGHT = 8, 8  # three panels a row


def selected(metric: str, selector: str) -> str:
    return f"{metric}{{{selector}}}" if selector else metric


def rate(metric: str, by: str, selector: str = "") -> str:
    """Per second."""
    return f"sum by ({by}) (rate({selected(metric, selector)}[$__rate_interval]))"


def per_interval(metric: str, by: str, selector: str = "") -> str:
    """How many in each point's interval (business events are few: counts read better)."""
    return f"sum by ({by}) (increase({selected(metric, selector)}[$__rate_interval]))"


def increase(metric: str, by: str, selector: str = "") -> str:
    """How many in all over the dashboard's time range."""
    return f"sum by ({by}) (increase({selected(metric, selector)}[$__range]))"


def latency(quantile: str) -> str:
    buckets = rate("http_request_duration_seconds_bucket", "service, le", SERVICE)
    return f"histogram_quantile({quantile}, {buckets})"


# (row title, [(panel title, description, unit, kind, [(expr, legend)])])
ROWS: list[tuple[str, list[tuple[str, str, str, str, list[tuple[str, str]]]]]] = [
    ("HTTP", [
        ("Requests per second", "Answers by service and status", "reqps", "timeseries",
         [(rate("http_requests_total", "service, status", SERVICE), "{{service}} {{status}}")]),
        ("Server errors", "Share of answers that are 5xx", "percentunit", "timeseries",
         [(rate("http_requests_total", "service", SERVICE + ',status=~"5.."') + " / "
           + rate("http_requests_total", "service", SERVICE), "{{service}}")]),
        ("Latency", "p50, p95 and p99 time to answer", "s", "timeseries",
         [(latency(q), f"{{{{service}}}} p{q[2:].ljust(2, '0')}")
          for q in ("0.5", "0.95", "0.99")]),
        ("Slowest routes (p95)", "The five routes slowest to answer", "s", "timeseries",
         [("topk(5, histogram_quantile(0.95, "
           + rate("http_request_duration_seconds_bucket", "service, method, route, le", SERVICE)
           + "))", "{{service}} {{method}} {{route}}")]),
    ]),
    ("Underwriting", [
        ("Limit decisions", "Credit-limit requests decided or referred, by outcome and by whom",
         "short", "timeseries",
         [(per_interval("tci_limit_decisions_total", "outcome, decided_by"),
           "{{outcome}} ({{decided_by}})")]),
        ("Coverage checks per second", "Answers by outcome, single checks and batch items",
         "reqps", "timeseries",
         [(rate("tci_coverage_checks_total", "mode, outcome"), "{{mode}} {{outcome}}")]),
        ("Coverage reasons", "The reason codes most given in the time range", "short", "bargauge",
         [("topk(10, " + increase("tci_coverage_check_reasons_total", "reason") + ")",
           "{{reason}}")]),
    ]),
    ("Claims", [
        ("Claims filed", "By cause, in the time range", "short", "bargauge",
         [(increase("tci_claims_filed_total", "cause"), "{{cause}}")]),
        ("Claims decided", "Claims approved and rejected in the time range, each counted once "
         "by its decision; approvals withdrawn: approved claims rejected afterwards, nothing "
         "being payable on them", "short", "bargauge",
         [(increase("tci_claim_decisions_total", "outcome"), "{{outcome}}"),
          ("sum(increase(tci_claim_approvals_withdrawn_total[$__range]))",
           "approvals withdrawn")]),
        ("Claims paid", "Claims paid and indemnity paid, by currency, in the time range", "short",
         "stat",
         [(increase("tci_claims_paid_total", "currency"), "{{currency}} claims"),
          (increase("tci_claim_indemnity_paid_total", "currency"), "{{currency}} indemnity")]),
    ]),
    ("Collections", [
        ("Escalations", "Cases moved up their ladder, by the stage reached, in the time range",
         "short", "bargauge",
         [(increase("tci_collection_escalations_total", "ladder, stage"), "{{ladder}} → {{stage}}")]),
        ("Events committed", "Events written for the feed and webhooks, by type", "short",
         "timeseries",
         [(per_interval("tci_events_total", "service, type", SERVICE), "{{type}}")]),
    ]),
    ("Outbox and webhooks", [
        ("Outbox backlog", "Messages to other services waiting (pending) and given up (dead)",
         "short", "timeseries",
         [(f"sum by (service) (tci_outbox_pending_messages{{{SERVICE}}})", "{{service}} pending"),
          (f"sum by (service) (tci_outbox_dead_messages{{{SERVICE}}})", "{{service}} dead")]),
        ("Oldest pending outbox message", "How long the oldest message has waited", "s",
         "timeseries",
         [(f"max by (service) (tci_outbox_oldest_pending_age_seconds{{{SERVICE}}})",
           "{{service}}")]),
        ("Outbox deliveries", "Attempts by target and outcome", "short", "timeseries",
         [(per_interval("tci_outbox_delivery_attempts_total", "service, target, outcome", SERVICE),
           "{{service}} → {{target}} {{outcome}}")]),
        ("Webhook deliveries", "Attempts by outcome (given_up: the endpoint is now failing)",
         "short", "timeseries",
         [(per_interval("tci_webhook_delivery_attempts_total", "service, outcome", SERVICE),
           "{{service}} {{outcome}}")]),
        ("Webhook endpoints", "Endpoints by status", "short", "timeseries",
         [(f"sum by (service, status) (tci_webhook_endpoints{{{SERVICE}}})",
           "{{service}} {{status}}")]),
    ]),
    ("Database pool and process", [
        ("Connections in use", "Pooled connections checked out, against the pool's size",
         "short", "timeseries",
         [(f"sum by (service) (tci_db_pool_checked_out_connections{{{SERVICE}}})",
           "{{service}} in use"),
          (f"sum by (service) (tci_db_pool_size{{{SERVICE}}})", "{{service}} size"),
          (f"sum by (service) (tci_db_pool_overflow_connections{{{SERVICE}}})",
           "{{service}} overflow")]),
        ("Idle connections", "Pooled connections waiting to be used", "short", "timeseries",
         [(f"sum by (service) (tci_db_pool_checked_in_connections{{{SERVICE}}})",
           "{{service}}")]),
        ("Memory", "Resident memory per process (one worker per process only)", "bytes",
         "timeseries",
         [('process_resident_memory_bytes{job=~"$job"}', "{{job}} {{instance}}")]),
        ("CPU", "CPU seconds per second per process", "percentunit", "timeseries",
         [('rate(process_cpu_seconds_total{job=~"$job"}[$__rate_interval])', "{{job}} {{instance}}")]),
    ]),
]  # fmt: skip


# The Prometheus data source, chosen when the dashboard is opened, the services and jobs shown.
VARIABLES = [
    {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
     "current": {}, "hide": 0, "refresh": 1},
    {"name": "service", "label": "Service", "type": "query", "datasource": DATASOURCE,
     "definition": "label_values(http_requests_total, service)",
     "query": {"query": "label_values(http_requests_total, service)",
               "refId": "PrometheusVariableQueryEditor-VariableQuery"},
     "includeAll": True, "multi": True, "allValue": ".*",
     "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
     "refresh": 2, "sort": 1, "hide": 0},
    # Process figures carry no `service` label: the scrape jobs of the services name them.
    {"name": "job", "label": "Job", "type": "query", "datasource": DATASOURCE,
     "definition": "label_values(http_requests_total, job)",
     "query": {"query": "label_values(http_requests_total, job)",
               "refId": "PrometheusVariableQueryEditor-VariableQuery"},
     "includeAll": True, "multi": True, "allValue": ".*",
     "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
     "refresh": 2, "sort": 1, "hide": 0},
]  # fmt: skip


def panel(
    ident: int, title: str, description: str, unit: str, kind: str,
    queries: list[tuple[str, str]], x: int, y: int,
) -> dict[str, Any]:  # fmt: skip
    options: dict[str, Any] = {}
    if kind == "timeseries":
        options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                   "tooltip": {"mode": "multi", "sort": "desc"}}  # fmt: skip
    elif kind in ("bargauge", "stat"):
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
        if kind == "bargauge":
            options |= {"orientation": "horizontal", "displayMode": "basic"}
    targets = [
        {"refId": chr(ord("A") + n), "datasource": DATASOURCE, "expr": expr,
         "legendFormat": legend, "range": True, "instant": kind != "timeseries"}
        for n, (expr, legend) in enumerate(queries)
    ]  # fmt: skip
    return {
        "id": ident,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": HEIGHT, "w": WIDTH, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": options,
        "targets": targets,
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    ident, y = 1, 0
    for title, row in ROWS:
        panels.append({"id": ident, "type": "row", "title": title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})  # fmt: skip
        ident, y = ident + 1, y + 1
        for n, spec in enumerate(row):
            x = (n % (24 // WIDTH)) * WIDTH
            if n and x == 0:
                y += HEIGHT
            panels.append(panel(ident, *spec, x=x, y=y))
            ident += 1
        y += HEIGHT
    return {
        "uid": "tci-services",
        "title": "TCI services",
        "description": "Requests, business events, outbox and webhooks, pool and process of "
        "underwriting, claims and collections",
        "tags": ["tci"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "timezone": "",
        "annotations": {"list": []},
        "templating": {"list": VARIABLES},
        "panels": panels,
    }


def rendered() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    DASHBOARD.write_text(rendered(), encoding="utf-8")
    print(f"wrote {DASHBOARD.relative_to(HERE.parent.parent)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
