"""The benchmarks run end to end at tiny sizes and report the figures they promise.

No timing is asserted here: the figures depend on the machine and its load.
"""

from __future__ import annotations

import json

import pytest

from bench import ingest, query, write_paths


@pytest.fixture()
def server_url(pg_admin_url: str) -> str:
    """The benchmarks create and drop their own databases on the test server."""
    return pg_admin_url


def _json_line(out: str) -> dict:
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert lines, out
    return json.loads(lines[-1])


def test_ingest_reports_every_figure(server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        ingest.main(
            [
                "--url",
                server_url,
                "--events",
                "40",
                "--growth-events",
                "40",
                "--upsert-events",
                "40",
                "--json",
            ]
        )
        == 0
    )
    result = _json_line(capsys.readouterr().out)
    for key in (
        "speedup_vs_seed",
        "fraction_of_raw_insert",
        "growth_last_first",
        "upsert_growth_last_first",
        "chunked_fraction_of_raw_insert",
        "seed_events_per_s",
        "append_events_per_s",
        "upsert_events_per_s",
        "chunked_events_per_s",
        "raw_events_per_s",
        "recorder_events_per_s",
    ):
        assert key in result, key
    assert result["ways"]["append"]["events"] == 40
    # indexing behind the writes caught up with them (NaN when it did not within a minute)
    assert result["index_lag"]["drain_s"] >= 0
    assert result["index_ms_per_entry"] > 0 and result["index_cost_vs_raw_insert"] > 0


def test_query_runs_every_kind_through_the_store(server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        query.main(["--url", server_url, "--traces", "300", "--repeat", "2", "--deep-page", "3", "--json"])
        == 0
    )
    result = _json_line(capsys.readouterr().out)
    assert result["dataset"]["traces"] == 300
    kinds = result["queries"]
    assert {
        "user's first page",
        "text: rare word",
        "contains: tool + error",
        "load by id",
        "count: user",
        "delete 10% by filter",
    } <= set(kinds)
    for figures in kinds.values():
        assert figures["n"] >= 1 and figures["p95_ms"] >= 0 and figures["plan"]


def test_write_paths_report_every_path(server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # one_run itself checks that every path stored each of its entries exactly once
    assert write_paths.main(["--url", server_url, "--smoke", "--json"]) == 0
    result = _json_line(capsys.readouterr().out)
    (run,) = result["runs"]
    assert set(run["fraction_of_raw_insert"]) == set(write_paths.PATHS)
    assert run["fraction_of_raw_insert"]["raw"] == 1.0
    assert all(v > 0 for v in run["median_ms"].values())
