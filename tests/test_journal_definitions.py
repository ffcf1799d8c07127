"""The journal's undo provenance of definitions: created survives a resume that finds its own creation,
and only attachments and values on things the run did not create are planned for an undo."""

from __future__ import annotations

import sqlite3
from dataclasses import astuple
from pathlib import Path

from migrator.journal import JOURNAL_FILE, DefinitionKind, Journal
from tests.journal_rows import new_run


def test_a_creation_stays_a_creation_when_a_resume_finds_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    run = new_run(journal)
    journal.cutover.record_definition(run.id, DefinitionKind.PERMISSION, "", "reports:read", created=True)
    journal.cutover.record_definition(run.id, DefinitionKind.PERMISSION, "", "reports:read", created=False)  # the resume
    journal.cutover.record_definition(run.id, DefinitionKind.PERMISSION, "", "billing:read", created=False)  # found
    journal.cutover.record_definition(run.id, DefinitionKind.PROPERTY, "usr", "plan", created=True)
    assert journal.cutover.created_definitions(run.id, DefinitionKind.PERMISSION) == [("", "reports:read")]
    assert journal.cutover.created_definitions(run.id, DefinitionKind.PROPERTY) == [("usr", "plan")]
    assert journal.cutover.created_definitions(new_run(journal).id, DefinitionKind.PERMISSION) == []  # per run


def test_only_what_the_run_did_to_things_it_did_not_create_is_taken_back_separately(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    run = new_run(journal)
    for key in ("viewer", "admin"):
        journal.organizations.stage_role(run.id, key, {"key": key, "name": key})
    journal.organizations.record_role(run.id, "viewer", created=False)
    journal.organizations.record_role(run.id, "admin", created=True)  # deleted with its attachments
    for role in ("viewer", "admin"):
        journal.cutover.record_definition(run.id, DefinitionKind.ROLE_PERMISSION, role, "reports:read", created=True)
    journal.cutover.record_definition(run.id, DefinitionKind.ROLE_PERMISSION, "viewer", "legacy", created=False)
    assert journal.cutover.attachments_to_found_roles(run.id) == [("viewer", "reports:read")]

    for org in ("org_found", "org_new"):
        journal.organizations.stage(run.id, org, {"name": org})
    journal.organizations.record(run.id, "org_found", "code_f", created=False)
    journal.organizations.record(run.id, "org_new", "code_n", created=True)
    journal.cutover.record_property_write(run.id, "org_found", "code_f", "slug", "old", "acme")
    journal.cutover.record_property_write(run.id, "org_found", "code_f", "slug", "acme", "acme")  # a resume: first kept
    journal.cutover.record_property_write(run.id, "org_new", "code_n", "slug", None, "new")
    writes = [astuple(w) for w in journal.cutover.property_writes_on_found_organizations(run.id)]
    assert writes == [("org_found", "code_f", "slug", "old", "acme")]


def test_an_open_intent_makes_a_role_or_organization_the_runs_until_its_outcome_is_recorded(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    run = new_run(journal)
    for key in ("admin", "viewer", "member"):
        journal.organizations.stage_role(run.id, key, {"key": key, "name": key})
    for org in ("org_a", "org_b"):
        journal.organizations.stage(run.id, org, {"name": org})
    assert journal.organizations.record_role_intent(run.id, "admin") is False  # first attempt: nothing open before
    assert journal.organizations.record_role_intent(run.id, "admin") is True  # a resume's attempt: the first may have landed
    assert journal.organizations.record_intent(run.id, "org_a") is False
    journal.organizations.record_role(run.id, "viewer", created=False)  # found, no intent
    # killed here: neither outcome recorded; an undo now takes back what the intents name
    assert journal.organizations.roles_created_by_run(run.id) == ["admin"]
    assert journal.organizations.created_by_run(run.id) == [("org_a", "")]  # no code yet: the undo asks Kinde

    journal.organizations.record_role(run.id, "admin", created=True)
    journal.organizations.record(run.id, "org_a", "code_a", created=True)
    assert journal.organizations.record_role_intent(run.id, "member") is False  # settled intents are closed
    journal.organizations.record_role(run.id, "member", created=False)  # someone else's after all: the intent is withdrawn
    assert journal.organizations.roles_created_by_run(run.id) == ["admin"]
    assert journal.organizations.created_by_run(run.id) == [("org_a", "code_a")]
    assert [r.create_intent for r in journal.organizations.roles(run.id)] == [0, 0, 0]


def test_a_journal_from_before_intents_opens_and_keeps_its_provenance(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    run = new_run(journal)
    for key in ("admin", "viewer"):
        journal.organizations.stage_role(run.id, key, {"key": key, "name": key})
    journal.organizations.stage(run.id, "org_a", {"name": "a"})
    journal.organizations.record_role(run.id, "admin", created=True)
    journal.organizations.record_role(run.id, "viewer", created=False)
    journal.organizations.record(run.id, "org_a", "code_a", created=True)
    journal.close()
    with sqlite3.connect(tmp_path / JOURNAL_FILE) as db:  # as an older migrator left it
        for table in ("roles", "organizations"):
            db.execute(f"ALTER TABLE {table} DROP COLUMN create_intent")
        db.execute("DROP TABLE migrations")  # an older migrator recorded none

    journal = Journal(tmp_path)
    assert journal.organizations.roles_created_by_run(run.id) == ["admin"]
    assert journal.organizations.created_by_run(run.id) == [("org_a", "code_a")]
    assert journal.organizations.record_role_intent(run.id, "viewer") is False
    journal.close()
