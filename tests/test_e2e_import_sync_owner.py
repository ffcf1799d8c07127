"""A user an import never brought, migrated since by `run --only-file not-in-kinde.csv`, has one owner.

The catch-up after an export reads Kinde to learn which Kinde user each exported user became. The user
the canary created carries the same `provided_id`, but it is the canary's: the export run must not claim it
too, or `undo <export run>` would delete it as well as `undo <canary run>`.
"""

from __future__ import annotations

from pathlib import Path

from tests.test_e2e_cutover import by_provided_id, migrator
from tests.test_e2e_import_sync import export, file_users, only_file
from tests.test_e2e_import_sync_deleted import USERS, _upload_all_but


def test_a_user_migrated_by_only_file_after_a_rejected_import_is_not_claimed_by_the_export(
    sandbox_factory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(users=USERS)
    sandbox.write_export(tmp_path / "users.csv")
    export_run, manifest, ids = export(sandbox, tmp_path)
    left_out = file_users(sandbox, ids)[0]
    _upload_all_but(sandbox, tmp_path, manifest, {left_out})
    only_file(sandbox, tmp_path, "out/api-users.csv")
    refused = migrator(sandbox, tmp_path, "sync", "--since", str(export_run), "--yes")
    assert refused.result.returncode == 2, refused.result.stdout + refused.result.stderr

    not_in_kinde = tmp_path / ".migrator" / "runs" / str(export_run) / "not-in-kinde.csv"
    canary = only_file(sandbox, tmp_path, str(not_in_kinde))
    assert canary.output["created"] == 1 and left_out in by_provided_id(canary.state)
    catch_up = migrator(sandbox, tmp_path, "sync", "--since", str(export_run), "--yes", "--json")
    assert catch_up.result.returncode == 0, catch_up.result.stdout[-2000:] + catch_up.result.stderr[-3000:]

    export_undo = migrator(sandbox, tmp_path, "undo", str(export_run), "--dry-run", "--json")
    assert export_undo.result.returncode == 0 and export_undo.writes == 0, export_undo.result.stderr[-3000:]
    assert export_undo.output["planned"]["user"] == len(ids["files"]) - 1  # every imported user but the canary's
    canary_undo = migrator(sandbox, tmp_path, "undo", str(canary.output["run_id"]), "--dry-run", "--json")
    assert canary_undo.result.returncode == 0, canary_undo.result.stderr[-3000:]
    assert canary_undo.output["planned"]["user"] == 1

    undone = migrator(sandbox, tmp_path, "undo", str(export_run), "--yes", "--json")
    assert undone.result.returncode == 0, undone.result.stderr[-3000:]
    assert left_out in by_provided_id(undone.state)  # still there: the canary's undo takes it back
