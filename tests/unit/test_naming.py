"""Output names: one preferred name, distinct fallbacks, errors reports that follow."""

from __future__ import annotations

from datetime import UTC, datetime

from shared import naming

CREATED = datetime(2026, 11, 25, 3, 33, 2, tzinfo=UTC)
JOB = "0123456789abcdef0123456789abcdef"


def test_keys_that_flatten_alike_want_the_same_name():
    keys = ["input/a/b.csv", "input/a_b.csv", "input/a b.csv", "input/a:b.csv", "input/a_b.csv.gz"]
    assert {naming.output_key(key, CREATED) for key in keys} == {"output/20261125T033302Z-a_b.csv"}


def test_candidates_start_with_the_plain_name_and_are_distinct():
    candidates = naming.output_key_candidates("input/a/b.csv", CREATED, JOB)
    assert candidates == [
        "output/20261125T033302Z-a_b.csv",
        "output/20261125T033302Z-a_b-01234567.csv",
        f"output/20261125T033302Z-a_b-{JOB}.csv",
    ]
    other = naming.output_key_candidates("input/a_b.csv", CREATED, "f" * 32)
    assert set(candidates[1:]).isdisjoint(other[1:])


def test_a_name_without_csv_gets_it_before_the_tag():
    assert naming.output_key_candidates("input/data", CREATED, JOB)[1] == (
        "output/20261125T033302Z-data-01234567.csv"
    )


def test_errors_report_follows_the_claimed_output_name():
    assert naming.errors_key("output/20261125T033302Z-a_b-01234567.csv") == (
        "errors/20261125T033302Z-a_b-01234567.csv"
    )
    assert naming.errors_key("output/20261125T033302Z-a_b.csv") == (
        "errors/20261125T033302Z-a_b.csv"
    )


def test_claim_ids_cannot_be_job_ids():
    claim = naming.name_claim_id("output/20261125T033302Z-a_b.csv")
    assert claim.startswith(naming.NAME_CLAIM_PREFIX)
    assert not set(claim) <= set("0123456789abcdef")
