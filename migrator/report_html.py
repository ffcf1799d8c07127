"""The sign-off report: one self-contained HTML page (report.html) that people who approve a cutover can
read without a terminal: the last verify's verdict, users moved by outcome and password method, failures
and skips by reason (linking the CSVs beside it), the reset cohort, and how each API was paced.

Pure: the numbers come from summary.json as it is (every one marked with ``data-summary``, a JSON
pointer into it, so a test can hold the page to the file), the charts from requests.jsonl's lines.
Rendered by Jinja2 with autoescaping on for every value (user-chosen text such as an error message
quoting a name is never live markup). No script, no external style, font or image: the charts are
inline SVG drawn here (a few polylines; a chart library would bring scripts or a browser).
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

REPORT_HTML = "report.html"
MAX_POINTS = 120
_THROTTLED = re.compile(r'"status":429[,}]')
_LINE = re.compile(
    r'\{"at":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)[^"]*\+00:00","service":"([a-z]+)"'
)  # intervals per chart: a long run's seconds are summed into wider intervals
CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 600, 230, 28

_ENV = Environment(
    loader=PackageLoader("migrator", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class Num:
    """A number shown in the report and where summary.json holds it (a JSON pointer, RFC 6901)."""

    value: Any
    pointer: str


@dataclass(frozen=True)
class ApiSeries:
    """One API's requests over the run, one value per interval of ``width`` seconds from ``start``."""

    service: str
    start: int  # Unix second of the first interval
    width: int
    requests: list[float]  # attempts sent per second
    throttled: list[float]  # 429 answers per second
    pace: list[float]  # the limiter's pace as seen in the log (see request_series)


def pointer(*parts: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def resolve(data: Any, json_pointer: str) -> Any:
    """The value a JSON pointer names (what the tests read back)."""
    for raw in json_pointer.split("/")[1:]:
        key = raw.replace("~1", "/").replace("~0", "~")
        data = data[int(key)] if isinstance(data, list) else data[key]
    return data


# -- charts: requests.jsonl -> per-interval series ------------------------------------------------


def request_series(lines: Iterable[str]) -> list[ApiSeries]:
    """Requests and 429s per second for each API, over intervals sharing one time axis.

    requests.jsonl records each attempt (when it was sent, its API and status), not the limiter's rate,
    so the pace is derived: the median, over the seconds of an interval in which the API was sent
    anything, of the requests sent that second. While work is queued the limiter releases requests at
    its rate, so a busy second's count is that rate; idle seconds (nothing to send) are left out instead
    of pulling it down. Streamed: what is held is one count per API per second.
    """
    seconds: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    clock: dict[str, int] = {}  # "2026-01-01T00:00:00" -> its Unix second: a second has many lines
    for line in lines:
        found = _LINE.match(line)  # request_log writes "at" and "service" first; json is 10x slower
        if found is None:
            continue  # a line cut by a killed run
        at, service = found.groups()
        second = clock.get(at)
        if second is None:
            try:
                second = clock[at] = int(datetime.fromisoformat(at).replace(tzinfo=UTC).timestamp())
            except ValueError:
                continue
        counts = seconds[service][second]
        counts[0] += 1
        if _THROTTLED.search(line, found.end()):
            counts[1] += 1
    if not seconds:
        return []
    first = min(min(per) for per in seconds.values())
    last = max(max(per) for per in seconds.values())
    span = last - first + 1
    width = max(1, math.ceil(span / MAX_POINTS))
    intervals = math.ceil(span / width)
    series = []
    for service in sorted(seconds):
        per = seconds[service]
        requests, throttled, pace = [], [], []
        for i in range(intervals):
            busy = [per[s] for s in range(first + i * width, first + (i + 1) * width) if s in per]
            requests.append(round(sum(c[0] for c in busy) / width, 2))
            throttled.append(round(sum(c[1] for c in busy) / width, 2))
            pace.append(round(float(statistics.median(c[0] for c in busy)), 2) if busy else 0.0)
        series.append(ApiSeries(service, first, width, requests, throttled, pace))
    return series


def _polyline(values: list[float], top: float) -> str:
    """SVG points for values on the chart's area (x spread evenly, 0 at the bottom)."""
    inner_w, inner_h = CHART_WIDTH - 2 * CHART_PAD, CHART_HEIGHT - 2 * CHART_PAD
    step = inner_w / max(1, len(values) - 1)
    return " ".join(
        f"{CHART_PAD + i * step:.1f},{CHART_PAD + inner_h - (v / top if top else 0) * inner_h:.1f}"
        for i, v in enumerate(values)
    )


def _chart(api: ApiSeries) -> dict[str, Any]:
    top = max([*api.requests, *api.throttled, *api.pace, 1.0])
    top = _nice(top)
    end = api.start + api.width * len(api.requests)
    lines = [  # drawn in this order: the 429s on top
        ("pace", "pace (req/s, derived)", api.pace),
        ("requests", "requests/s", api.requests),
        ("throttled", "429s/s", api.throttled),
    ]
    return {
        "service": api.service,
        "width": api.width,
        "intervals": len(api.requests),
        "top": top,
        "start": _time(api.start),
        "end": _time(end),
        "start_clock": _time(api.start)[11:19],
        "end_clock": _time(end)[11:19],
        "lines": [
            {"key": key, "label": label, "points": _polyline(values, top), "data": " ".join(f"{v:g}" for v in values)}
            for key, label, values in lines
        ],
        "grid": [
            {"y": CHART_PAD + (CHART_HEIGHT - 2 * CHART_PAD) * (1 - f), "label": f"{top * f:g}"} for f in (0, 0.5, 1)
        ],
    }


def _nice(value: float) -> float:
    """The chart's top: the next 1, 2 or 5 times a power of ten."""
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


def _time(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- the page --------------------------------------------------------------------------------------


LAZY_LABELS = {  # summary.json's ``lazy`` counts (journal.users.lazy_counts)
    "cohort": "Cohort (password Kinde cannot import, an email to sign in with)",
    "awaiting_sign_in": "Left to the workflow: moves at the first sign-in",
    "moved": "Moved at sign-in (adopted by lazy finish)",
    "created": "Created by the migrator (without a password, or the fallback)",
    "skipped": "Skipped",
    "failed": "Failed",
}


def _numbers(section: Mapping[str, Any] | None, *base: str) -> list[tuple[str, Num]]:
    """A dict of counts as (label, number) rows; nested or missing values are left out."""
    return [
        (str(key), Num(value, pointer(*base, key)))
        for key, value in (section or {}).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]


def _row(data: Mapping[str, Any], label: str, *path: str) -> tuple[str, Num] | None:
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return label, Num(value, pointer(*path))


def _rows(data: Mapping[str, Any], *rows: tuple[str, tuple[str, ...]]) -> list[tuple[str, Num]]:
    return [row for label, path in rows if (row := _row(data, label, *path)) is not None]


def render(summary: Mapping[str, Any], series: list[ApiSeries], files: Mapping[str, str]) -> str:
    """The page. ``files``: the reports beside it (name -> file name), linked relatively."""
    run = summary.get("run") or {}
    verify_base = "verify" if summary.get("verify") else "run/verification" if run.get("verification") else None
    verify = summary.get("verify") or run.get("verification") or {}
    failures = [
        {
            "code": f.get("code"),
            "message": f.get("message"),
            "users": Num(f.get("users"), pointer("run", "failures", i, "users")),
        }
        for i, f in enumerate(run.get("failures") or [])
    ]
    context = {
        "run": run,
        "files": files,
        "header": _rows(
            summary,
            ("Run", ("run", "run_id")),
            ("Pass", ("run", "pass_number")),
            ("Exit code", ("run", "exit_code")),
            ("Seconds", ("run", "seconds")),
        ),
        "verdict": verify.get("verdict"),
        "coverage": (verify.get("coverage") or {}).get("text"),
        "verify_rows": (
            _rows(
                summary,
                ("Users expected in Kinde", (*verify_base.split("/"), "expected_users")),
                ("Users Kinde holds", (*verify_base.split("/"), "kinde_users")),
            )
            + _numbers(verify.get("counts"), *verify_base.split("/"), "counts")
            if verify_base
            else []
        ),
        "outcome_rows": _rows(
            summary,
            ("Users in Clerk", ("run", "plan", "source_users")),
            ("Users fetched", ("run", "plan", "staged")),
            ("Created in Kinde", ("run", "created")),
            ("Already in Kinde", ("run", "already_present")),
            ("Finished (created by an earlier pass)", ("run", "finished_created_earlier")),
            ("Done by an earlier run", ("run", "done_earlier")),
            ("Failed", ("run", "failed")),
            ("Failed in the run (all passes)", ("run", "failed_in_run")),
            ("Pending", ("run", "pending")),
            ("Memberships added", ("run", "memberships_added")),
            ("Memberships failed", ("run", "memberships_failed")),
        ),
        "earlier_rows": _numbers(run.get("earlier"), "run", "earlier"),
        "password_rows": [
            (f"Imported: {method}", n) for method, n in _numbers(run.get("passwords_set"), "run", "passwords_set")
        ]
        + _rows(
            summary,
            ("Reset requested", ("run", "password_resets")),
            ("Created without a password", ("run", "plan", "without_password")),
            ("Password in Clerk, no digest in the export", ("run", "plan", "password_missing")),
        ),
        "failures": failures,
        "skips": _numbers(run.get("skipped"), "run", "skipped"),
        "reset_rows": _rows(
            summary,
            ("Planned resets", ("run", "plan", "password_resets")),
            ("Resets requested", ("run", "password_resets")),
            ("To re-enrol MFA", ("run", "plan", "mfa_reenrol")),
        ),
        "lazy_rows": [(LAZY_LABELS.get(key, key), n) for key, n in _numbers(run.get("lazy"), "run", "lazy")],
        "request_rows": [
            (
                service,
                Num(n, pointer("run", "requests", service)),
                [_row(summary, "", "run", column, service) for column in ("throttled", "retried", "reconciled")],
            )
            for service, n in (run.get("requests") or {}).items()
        ],
        "charts": [_chart(api) for api in series],
        "chart": {"width": CHART_WIDTH, "height": CHART_HEIGHT, "pad": CHART_PAD},
    }
    return _ENV.get_template("report.html.j2").render(**context)
