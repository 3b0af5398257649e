"""Stage 4 (dashboards): Stage health: the Prometheus metrics of the gateway, rules, ledger and API."""

from __future__ import annotations

from grafana_foundation_sdk.builders import prometheus, timeseries

from dashboards.boards import common as c
from dashboards.boards.common import bi

UID = "coldchain-stages"

# Every metric the panels read (tests/dashboards/test_metric_names.py: the stages serve them;
# a histogram's series are <name>_bucket/_sum/_count).
METRICS: tuple[str, ...] = (
    "coldchain_gateway_queue_depth",
    "coldchain_gateway_commit_seconds",
    "coldchain_gateway_seconds_since_last_commit",
    "coldchain_gateway_dead_letters_total",
    "coldchain_rules_queue_depth",
    "coldchain_rules_queue_lag_seconds",
    "coldchain_rules_batch_seconds",
    "coldchain_rules_verdicts_total",
    "coldchain_ledger_queue_depth",
    "coldchain_ledger_queue_lag_seconds",
    "coldchain_ledger_batch_seconds",
    "coldchain_ledger_capture_jobs",
    "coldchain_ledger_checkpoint_age_seconds",
    "coldchain_ledger_verify_ok",
    "coldchain_api_requests_total",
    "coldchain_api_request_seconds",
)


# A queue panel's second query is the oldest item's age: seconds, on its own axis.
LAG_AXIS = [c.prop("unit", "s"), c.prop("custom.axisPlacement", "right")]


def p95(histogram: str, by: str = "") -> str:
    """The 95th percentile of a histogram over the panel's rate interval, optionally per label."""
    labels = f"le, {by}" if by else "le"
    return f"histogram_quantile(0.95, sum by ({labels}) (rate({histogram}_bucket[$__rate_interval])))"


def rate(counter: str, by: str = "") -> str:
    """Per-second rate of a counter, summed (per label when given)."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({counter}[$__rate_interval]))"


def _panel(
    title: str, description: str, unit: str, targets: list[tuple[str, str]], place: tuple[int, int, int, int]
) -> timeseries.Panel:
    panel = (
        c.lines(timeseries.Panel().title(title).description(description).datasource(c.PROM).unit(unit))
        .interval("15s")
        .grid_pos(c.at(*place))
    )
    for ref, (expr, legend) in zip("ABCDEFGH", targets, strict=False):
        panel = panel.with_target(
            prometheus.Dataquery().ref_id(ref).datasource(c.PROM).expr(expr).legend_format(legend).range()
        )
    return panel


def dashboard() -> c.Json:
    w = 8
    panels = [
        _panel(
            bi("网关队列深度", "Gateway queue depth"),
            "MQTT messages the gateway received and has not yet written to the database.",
            "short",
            [("coldchain_gateway_queue_depth", "{{instance}}")],
            (0, 0, w, 8),
        ),
        _panel(
            bi("网关提交耗时 P95", "Gateway commit p95"),
            "95th percentile of the time to write and commit one gateway transaction.",
            "s",
            [(p95("coldchain_gateway_commit_seconds"), "p95")],
            (8, 0, w, 8),
        ),
        _panel(
            bi("距上次提交", "Seconds since last commit"),
            "Seconds since the gateway last committed a transaction; the alert rule fires above 120 s.",
            "s",
            [("coldchain_gateway_seconds_since_last_commit", "{{instance}}")],
            (16, 0, w, 8),
        ),
        _panel(
            bi("死信速率", "Dead letters rate"),
            "Messages dead-lettered per second, by reason.",
            "reqps",
            [(rate("coldchain_gateway_dead_letters_total", "reason"), "{{reason}}")],
            (0, 8, w, 8),
        ),
        _panel(
            bi("规则队列", "Rules queue"),
            "Ingest batches waiting for the rules worker (depth) and the age of the oldest (lag).",
            "short",
            [
                ("coldchain_rules_queue_depth", bi("深度", "depth")),
                ("coldchain_rules_queue_lag_seconds", bi("延迟（秒）", "lag (s)")),
            ],
            (8, 8, w, 8),
        ).override_by_query("B", LAG_AXIS),
        _panel(
            bi("规则批处理 P95", "Rules batch p95"),
            "95th percentile of the rules worker's time per batch.",
            "s",
            [(p95("coldchain_rules_batch_seconds"), "p95")],
            (16, 8, w, 8),
        ),
        _panel(
            bi("判定速率（按类型）", "Verdicts rate by kind"),
            "Verdicts the rules worker writes per second, by kind.",
            "ops",
            [(rate("coldchain_rules_verdicts_total", "kind"), "{{kind}}")],
            (0, 16, w, 8),
        ),
        _panel(
            bi("账本队列", "Ledger queue"),
            "Events waiting for the ledger worker (depth) and the age of the oldest (lag).",
            "short",
            [
                ("coldchain_ledger_queue_depth", bi("深度", "depth")),
                ("coldchain_ledger_queue_lag_seconds", bi("延迟（秒）", "lag (s)")),
            ],
            (8, 16, w, 8),
        ).override_by_query("B", LAG_AXIS),
        _panel(
            bi("账本批处理 P95", "Ledger batch p95"),
            "95th percentile of the ledger worker's time per batch.",
            "s",
            [(p95("coldchain_ledger_batch_seconds"), "p95")],
            (16, 16, w, 8),
        ),
        _panel(
            bi("采集任务（按状态）", "Capture jobs by state"),
            "EPCIS capture jobs of the ledger, by state.",
            "short",
            [("sum by (state) (coldchain_ledger_capture_jobs)", "{{state}}")],
            (0, 24, w, 8),
        ),
        _panel(
            bi("检查点时长", "Checkpoint age"),
            "Seconds since the ledger signed its last checkpoint of the chain head.",
            "s",
            [("coldchain_ledger_checkpoint_age_seconds", "{{instance}}")],
            (8, 24, w, 8),
        ),
        _panel(
            bi("账本校验", "Ledger verify"),
            "1 while the hash chain verifies, 0 when the last verification failed (an alert rule fires).",
            "bool_yes_no",
            [("coldchain_ledger_verify_ok", "{{instance}}")],
            (16, 24, w, 8),
        )
        .min(0)
        .max(1),
        _panel(
            bi("API 请求速率（按路由）", "API request rate by route"),
            "HTTP requests per second the API served, by route template and status.",
            "reqps",
            [(rate("coldchain_api_requests_total", "route, status"), "{{route}} {{status}}")],
            (0, 32, 12, 8),
        ),
        _panel(
            bi("API 延迟 P95（按路由）", "API latency p95 by route"),
            "95th percentile of the API's request duration, by route template.",
            "s",
            [(p95("coldchain_api_request_seconds", "route"), "{{route}}")],
            (12, 32, 12, 8),
        ),
    ]
    board = (
        c.board(
            UID,
            "各阶段健康",
            "Stage health",
            "Prometheus metrics of every stage: queues, lags, batch durations, verdicts, capture jobs, HTTP.",
        )
        .refresh("30s")
        .time("now-6h", "now")
    )
    for panel in panels:
        board = board.with_panel(panel)
    return c.to_json(board)
