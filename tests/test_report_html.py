"""The sign-off report (runs/N/report.html): written by every run and verify and by `migrator report html`,
one self-contained page whose numbers are summary.json's, whose charts have one point per interval of
requests.jsonl, and in which no value a Clerk user chose is live markup."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import html5lib
import pytest

from migrator.journal import Journal
from migrator.report_files import write_run_reports
from migrator.report_html import MAX_POINTS, render, request_series, resolve
from migrator.reports import build_plan, build_summary
from migrator.request_log import RequestLog
from migrator.sandbox.faults import FaultProfile
from migrator.sandbox.server import Sandbox, SandboxOptions
from tests.e2e import cli_env, run_cli
from tests.journal_rows import new_run, put

NS = {"h": "http://www.w3.org/1999/xhtml", "svg": "http://www.w3.org/2000/svg"}


def parse(page: str) -> Any:
    """html5lib in strict mode: any parse error (an unclosed or stray tag, bad nesting) raises."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=True).parse(page)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A run under stray 429s and 5xx, then its verify: the folder both left."""
    faults = FaultProfile(error_rate=0.02, rate_limit_rate=0.05)
    cwd = tmp_path_factory.mktemp("report")
    with Sandbox(SandboxOptions(users=300, kinde_faults=faults)) as sandbox:
        sandbox.write_export(cwd / "users.csv")
        env = cli_env(sandbox, KINDE_MAX_RPS="2000", KINDE_INITIAL_RPS="200")
        result = run_cli("run", "--clerk-export", "users.csv", "--yes", cwd=cwd, env=env)
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr[-3000:]
        result = run_cli("verify", cwd=cwd, env=env)
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr[-3000:]
        yield cwd


def folder_of(cwd: Path) -> Path:
    return cwd / ".migrator/runs/1"


def test_every_run_and_verify_leave_a_private_self_contained_page(migrated: Path) -> None:
    folder = folder_of(migrated)
    page = (folder / "report.html").read_text()
    assert oct((folder / "report.html").stat().st_mode & 0o777) == "0o600"
    doc = parse(page)
    assert doc.find(".//h:script", NS) is None  # nothing runs, nothing is fetched
    for element in doc.iter():
        for name in ("src", "href"):
            target = element.get(name)
            assert target is None or (not target.startswith(("http", "//")) and ":" not in target), target
    links = {a.get("href") for a in doc.iterfind(".//h:a", NS)}
    assert {"failures.csv", "skipped.csv", "verify.csv"} <= links
    assert all((folder / link).exists() for link in links)  # relative, beside it
    verdict = json.loads((folder / "summary.json").read_text())["verify"]["verdict"]
    assert f"Verify {verdict}" in page  # verify's write_summary rewrote the run's page
    coverage = json.loads((folder / "summary.json").read_text())["verify"]["coverage"]["text"]
    assert f"Checked by {coverage}" in " ".join(page.split())  # which check covered whom
    body = "".join(doc.find(".//h:body", NS).itertext())
    assert "@" not in body and "$2" not in body  # no email, no digest


def test_every_number_is_summary_jsons(migrated: Path) -> None:
    folder = folder_of(migrated)
    summary = json.loads((folder / "summary.json").read_text())
    doc = parse((folder / "report.html").read_text())
    marked = [e for e in doc.iter() if e.get("data-summary")]
    pointers = {e.get("data-summary") for e in marked}
    for element in marked:
        assert "".join(element.itertext()) == str(resolve(summary, element.get("data-summary")))
    for expected in (
        "/run/created",
        "/run/failed",
        "/verify/kinde_users",
        "/verify/counts/missing",
        "/run/requests/Kinde",
        "/run/retried/Kinde",  # the faults were met: retries are counted beside the 429s
    ):
        assert expected in pointers
    assert any(p.startswith("/run/passwords_set/") for p in pointers)
    for cell in doc.iterfind(".//h:td", NS):  # a number in a table is always one of summary.json's
        if "num" in (cell.get("class") or "").split() and "".join(cell.itertext()).strip():
            assert cell.get("data-summary"), "".join(cell.itertext())


def test_charts_have_one_point_per_interval_of_the_request_log(migrated: Path) -> None:
    folder = folder_of(migrated)
    logged = [json.loads(line) for line in (folder / "requests.jsonl").read_text().splitlines()]
    entries = [e for e in logged if "event" not in e]  # the attempts (a reconciliation's line is no request)
    seconds = [int(datetime.fromisoformat(e["at"]).timestamp()) for e in entries]
    span = max(seconds) - min(seconds) + 1
    width = max(1, math.ceil(span / MAX_POINTS))
    intervals = math.ceil(span / width)
    sent = Counter((e["service"], (s - min(seconds)) // width) for e, s in zip(entries, seconds, strict=True))
    throttled = Counter(e["service"] for e in entries if e["status"] == 429)
    assert throttled["kinde"] > 0  # the faults were met, so the 429 line has something to show

    doc = parse((folder / "report.html").read_text())
    figures = {f.get("data-chart"): f for f in doc.iterfind(".//h:figure", NS)}
    assert set(figures) == {e["service"] for e in entries}
    for service, figure in figures.items():
        assert int(figure.get("data-intervals")) == intervals and int(figure.get("data-interval-seconds")) == width
        lines = {p.get("data-series"): p for p in figure.iterfind(".//svg:polyline", NS)}
        assert set(lines) == {"requests", "throttled", "pace"}
        for line in lines.values():
            assert len(line.get("points").split()) == intervals
            assert len(line.get("data-values").split()) == intervals
        rates = [float(v) for v in lines["requests"].get("data-values").split()]
        assert rates == [round(sent[(service, i)] / width, 2) for i in range(intervals)]
        per_429 = sum(float(v) for v in lines["throttled"].get("data-values").split())
        assert round(per_429 * width) == throttled[service]


def test_report_html_rebuilds_the_page(migrated: Path) -> None:
    folder = folder_of(migrated)
    (folder / "report.html").unlink()
    result = run_cli("report", "html", "1", cwd=migrated, env=cli_env())
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == (folder / "report.html").resolve() or result.stdout.strip().endswith(
        "runs/1/report.html"
    )
    assert oct((folder / "report.html").stat().st_mode & 0o777) == "0o600"
    result = run_cli("report", "html", "7", cwd=migrated, env=cli_env())
    assert result.returncode == 2 and "no run 7" in result.stderr and "Traceback" not in result.stderr


def test_report_html_of_a_run_without_a_summary_says_so(tmp_path: Path) -> None:
    journal = Journal(tmp_path / ".migrator")
    try:
        new_run(journal)  # started, never finished a pass: no summary.json yet
    finally:
        journal.close()
    result = run_cli("report", "html", cwd=tmp_path, env=cli_env())
    assert result.returncode == 2, result.stderr
    assert "run 1 has no summary.json yet" in result.stderr and "migrator resume 1" in result.stderr
    assert not (tmp_path / ".migrator/runs/1/report.html").exists()


HOSTILE_NAME = '<script>alert("name")</script>'
HOSTILE_EMAIL = '=HYPERLINK("http://evil.example/?x","open")@example.com'


def test_a_failed_users_markup_and_formulas_stay_text(tmp_path: Path) -> None:
    """A failure's message quotes the user (as Kinde's refusals do): it reaches the page as text only."""
    journal = Journal(tmp_path)
    try:
        run = new_run(journal)
        detail = f"Kinde refused {HOSTILE_NAME} <{HOSTILE_EMAIL}> <img src=x onerror=alert(1)>"
        put(
            journal,
            run.id,
            "user_bad",
            1,
            email=HOSTILE_EMAIL,
            state="failed",
            error_code="KINDE_REFUSED",
            error_message=detail,
        )
        put(journal, run.id, "user_skip", 2, state="skipped", skip_reason="<b>odd</b>", created="n/a")
        plan = build_plan(journal, run.id, with_export=False)
        summary = build_summary(journal, run.id, "run", plan, cancelled=False)
        paths = write_run_reports(journal, run.id, tmp_path, summary.to_json())
    finally:
        journal.close()

    page = Path(paths["report"]).read_text()
    doc = parse(page)
    assert doc.find(".//h:script", NS) is None and doc.find(".//h:img", NS) is None and doc.find(".//h:b/..", NS)
    assert all("odd" not in "".join(b.itertext()) for b in doc.iterfind(".//h:b", NS))  # the reason is not bold
    text = "".join(doc.find(".//h:main", NS).itertext())
    assert HOSTILE_NAME in text and HOSTILE_EMAIL in text and "<b>odd</b>" in text  # shown, as text
    assert "&lt;script&gt;" in page and "<script" not in page
    for element in doc.iter():  # the formula never becomes a link or an attribute
        assert all("HYPERLINK" not in value for value in element.attrib.values())


def logged(tmp_path: Path, entries: list[dict[str, Any]]) -> list[str]:
    """The lines RequestLog itself writes for these entries."""
    log = RequestLog()
    log.attach(tmp_path / "requests.jsonl")
    for entry in entries:
        log.record(entry)
    log.close()
    return (tmp_path / "requests.jsonl").read_text().splitlines(keepends=True)


def test_a_cut_or_empty_log_still_renders(tmp_path: Path) -> None:
    lines = logged(tmp_path, [{"at": "2026-01-01T00:00:00.000+00:00", "service": "kinde", "status": 429}])
    lines.append('{"at":"2026-01-01T00:0')  # cut by a killed run
    series = request_series(lines)
    assert [(s.service, s.requests, s.throttled) for s in series] == [("kinde", [1.0], [1.0])]
    page = render({}, [], {})
    parse(page)
    assert (
        "Not verified" in page
        and "No request was logged" in page
        and "None: this run migrated no password lazily" in page
    )


def test_long_runs_are_summed_into_at_most_max_points_intervals(tmp_path: Path) -> None:
    entries = [
        {"at": f"2026-01-01T{h:02d}:{m:02d}:{s:02d}.000+00:00", "service": "kinde", "status": 200, "ms": 1.0}
        for h in range(2)
        for m in range(60)
        for s in range(0, 60, 2)
    ]
    lines = logged(tmp_path, entries)
    (series,) = request_series(lines)
    assert len(series.requests) <= MAX_POINTS and series.width == math.ceil(7199 / MAX_POINTS)
    assert sum(series.requests) * series.width == pytest.approx(len(lines))
    assert all(p == 1.0 for p in series.pace)  # a request every other second: busy seconds send 1


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.parametrize("width", [390, 1200])
def test_the_page_renders_in_headless_chromium(migrated: Path, tmp_path: Path, width: int) -> None:
    if CHROMIUM is None:
        pytest.skip("no chromium binary on PATH: the screenshot check needs one (apt-get install chromium)")
    shot = tmp_path / f"report-{width}.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path}",
            f"--window-size={width},2400",
            f"--screenshot={shot}",
            (folder_of(migrated) / "report.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    png_width, png_height = struct.unpack(">II", data[16:24])
    assert (png_width, png_height) == (width, 2400)
    assert len(set(_pixels(data))) > 8  # drawn: text, colours, charts (a blank page has one colour)
    if width == 1200:  # printable: the print stylesheet lays it out on pages
        pdf = tmp_path / "report.pdf"
        subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={tmp_path}",
                "--no-pdf-header-footer",
                f"--print-to-pdf={pdf}",
                (folder_of(migrated) / "report.html").as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        document = pdf.read_bytes()
        assert document[:5] == b"%PDF-" and len(re.findall(rb"/Type\s*/Page\b", document)) >= 2  # laid out on pages
    if keep := os.environ.get("MIGRATOR_KEEP_SCREENSHOTS"):  # a folder, for a developer who wants to look
        shutil.copy(shot, Path(keep) / shot.name)


def _pixels(png: bytes) -> bytes:
    """The decompressed image data of a PNG (its filter bytes included): enough to tell a blank page."""
    chunks, offset = [], 8
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        if kind == b"IDAT":
            chunks.append(png[offset + 8 : offset + 8 + length])
        offset += 12 + length
    return zlib.decompress(b"".join(chunks))[:200_000]
