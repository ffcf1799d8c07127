"""How `migrator verify` shows its verdict: a table of counts, a few examples of each kind, the reports."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from migrator.stages.verify import BLOCKING, KINDS, Verification

MEANING = {
    "missing": "Clerk users that should be in Kinde and are not",
    "duplicated": "two Kinde users for one Clerk id or one email",
    "unexpected": "Kinde users with a Clerk id this journal does not know",
    "drift": "fields that differ from the plan",
    "incomplete": "done in the journal, but an identity or membership is absent",
    "not_carried": "Clerk social accounts on a mapped provider that no Kinde identity can carry (see warnings)",
    "api_pending": "listed in api-users.csv, not yet in Kinde: `migrator run --only-file api-users.csv`",
    "lazy_pending": "lazy cohort, not signed in yet: moves at its first sign-in, or `migrator lazy finish`",
    "not_gone": "users the undo counted deleted or already gone that Kinde still has",
}


def show_verification(result: Verification, out: Console, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(result.to_json()))
        return
    verdict = "[green]passed[/green]" if result.passed else "[red]failed[/red]"
    table = Table(title=f"Verify of run {result.run_id}: {verdict}", title_justify="left")
    table.add_column("finding")
    table.add_column("count", justify="right")
    table.add_column("meaning")
    for kind in (k for k in KINDS if k in result.counts):
        count = result.counts.get(kind, 0)
        style = "red" if count and kind in BLOCKING else ("yellow" if count else "")
        table.add_row(kind, f"[{style}]{count}[/{style}]" if style else str(count), MEANING[kind])
    expected = "users the undo took back, expected gone" if "not_gone" in result.counts else "Clerk users expected in Kinde"
    out.print(f"Kinde users read: {result.kinde_users}; {expected}: {result.expected_users}")
    if result.coverage:
        out.print(f"Checked by {result.coverage.describe()}", highlight=False)
    out.print(table)
    for kind in KINDS:
        for row in result.examples.get(kind, []):
            detail = f"{row['field']}: expected {row['expected'] or '-'}, found {row['found'] or '-'}"
            out.print(f"  {kind}: {row['clerk_id'] or '-'} (Kinde {row['kinde_id'] or '-'}) {detail}", highlight=False)
    for name, why in result.not_checked.items():
        out.print(f"Not checked: {name} ({why})", highlight=False)
    for name, path in result.reports.items():
        out.print(f"Report ({name}): {path}", highlight=False)
