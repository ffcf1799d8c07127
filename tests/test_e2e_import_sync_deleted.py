"""A catch-up after an export when an exported user never reached Kinde and was deleted from Clerk since.

Such a user is accounted for (nothing to delete, nothing to create): it does not refuse the catch-up,
which counts it; only exported users still in Clerk and absent from Kinde refuse it, and
`run --only-file not-in-kinde.csv` migrates exactly those.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.test_e2e_cutover import by_provided_id, change_clerk, migrator
from tests.test_e2e_import_files import FORMAT_OF_PART, upload
from tests.test_e2e_import_sync import export, file_users, only_file

USERS = 120


def _without(source: Path, target: Path, left_out: set[str]) -> Path:
    """A copy of an import file without the records of ``left_out`` (as if Kinde's import rejected them)."""
    if source.suffix == ".ndjson":
        lines = [line for line in source.read_text().splitlines() if json.loads(line)["id"] not in left_out]
        target.write_text("".join(f"{line}\n" for line in lines))
    else:
        with source.open(newline="") as handle:
            rows = [row for row in csv.reader(handle) if not left_out & set(row)]
        with target.open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
    return target


def _upload_all_but(sandbox, workdir: Path, manifest: dict, left_out: set[str]) -> None:
    out, held = workdir / "out", workdir / "held-back"
    held.mkdir()
    upload(sandbox, out / "organizations.csv", "organizations")
    for item in manifest["files"]:
        stem = item["name"].rsplit("-", 1)[0]
        if stem in FORMAT_OF_PART:
            upload(
                sandbox,
                _without(out / item["name"], held / item["name"], left_out),
                FORMAT_OF_PART[stem] or "kinde-ndjson",
            )


def _listed(workdir: Path, export_run: int) -> set[str]:
    with (workdir / ".migrator" / "runs" / str(export_run) / "not-in-kinde.csv").open() as handle:
        return {row["clerk_id"] for row in csv.DictReader(handle)}


def test_an_exported_user_deleted_from_clerk_before_its_import_does_not_block_the_catch_up(
    sandbox_factory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(users=USERS)
    sandbox.write_export(tmp_path / "users.csv")
    export_run, manifest, ids = export(sandbox, tmp_path)
    kept_out, deleted = file_users(sandbox, ids)[:2]
    _upload_all_but(sandbox, tmp_path, manifest, {kept_out, deleted})
    only_file(sandbox, tmp_path, "out/api-users.csv")
    change_clerk(sandbox, {"delete": [deleted]})

    refused = migrator(sandbox, tmp_path, "sync", "--since", str(export_run), "--delete-removed", "--yes")
    assert refused.result.returncode == 2, refused.result.stdout + refused.result.stderr
    assert "1 of its users are not in Kinde yet" in " ".join(refused.result.stderr.split())
    assert refused.writes == 0
    assert _listed(tmp_path, export_run) == {kept_out}  # the deleted user is not asked for

    not_in_kinde = tmp_path / ".migrator" / "runs" / str(export_run) / "not-in-kinde.csv"
    migrated = only_file(sandbox, tmp_path, str(not_in_kinde))
    assert migrated.output["created"] == 1 and kept_out in by_provided_id(migrated.state)

    catch_up = migrator(sandbox, tmp_path, "sync", "--since", str(export_run), "--delete-removed", "--yes", "--json")
    assert catch_up.result.returncode == 0, catch_up.result.stdout[-2000:] + catch_up.result.stderr[-3000:]
    assert catch_up.output["plan"]["users_gone_before_import"] == 1
    assert "deleted from Clerk before their import reached Kinde" in " ".join(catch_up.result.stderr.split())
    assert catch_up.writes == 0 and deleted not in by_provided_id(catch_up.state)
    assert not not_in_kinde.exists()

    again = migrator(sandbox, tmp_path, "sync", "--since", str(export_run), "--yes", "--json")
    assert again.result.returncode == 0 and again.writes == 0, again.result.stderr[-3000:]
    assert again.output["plan"]["users_gone_before_import"] == 0  # counted once, by the catch-up that found it
    reads = again.state["requests"]["by_route"]["GET /api/v1/users"]["total"]
    assert reads == catch_up.state["requests"]["by_route"]["GET /api/v1/users"]["total"]  # Kinde not read again
