"""pages/settings.py: retention from the dashboard: count, confirm, delete, report; the
server's schedule shown; a signed-in user prunes only their own traces."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from apptest_support import dashboard_env, open_page

from tracedb import TraceFilter


def aged(db, user: str, days: list[float], status: str = "completed") -> list[str]:
    """Traces of ``user`` last updated ``days`` ago."""
    now = datetime.now(UTC)
    made = []
    for i, d in enumerate(days):
        tid = db.save_trace(user, None, f"{user}-{i}-{d}", [{"node": "x"}], name=f"{user} {d}d")
        if status != "completed":
            db.set_status(tid, status)
        made.append(tid)
    db.set_trace_times(
        [(t, now - timedelta(days=d + 1), now - timedelta(days=d)) for t, d in zip(made, days, strict=True)]
    )
    return made


@pytest.fixture()
def env(db_url: str) -> Iterator[None]:
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_AUTH=None, TRACEDB_RETENTION=None):
        yield


def test_count_confirm_delete_and_report(env, db, ids) -> None:
    user = ids("old")
    old = aged(db, user, [40, 50, 60])
    new = aged(db, user, [1])
    failed_old = aged(db, user, [45], status="failed")
    at = open_page("settings")
    assert not at.exception
    assert any("nothing is pruned on a schedule" in c.value for c in at.caption)
    assert at.button(key="prune_ask").disabled
    at.number_input(key="prune_age").set_value(30)
    at.selectbox(key="prune_status").set_value("completed")
    at.button(key="prune_count").click().run()
    # other users' old traces count too (a single-user dashboard sees every trace)
    expected = db.prune(timedelta(days=30), status="completed", dry_run=True)
    assert expected >= 3
    assert any(f"{expected:,} traces would go" in m.value for m in at.markdown)
    assert not at.button(key="prune_ask").disabled
    # nothing is deleted by counting
    assert all(db.get_summary(t) for t in old + new + failed_old)
    at.button(key="prune_ask").click().run()
    assert any(b.label == f"Delete {expected:,}" for b in at.button)
    at.button(key="prune_delete").click().run()
    assert not at.exception
    assert any(
        s.value.startswith(f"Deleted {expected:,} traces (traces not updated for 30 d, of status completed)")
        for s in at.success
    )
    assert all(db.get_summary(t) is None for t in old)
    assert db.get_summary(new[0]) and db.get_summary(failed_old[0])


def test_keep_each_users_newest(env, db, ids) -> None:
    user = ids("keeper")
    made = aged(db, user, [10, 20, 30, 40])
    at = open_page("settings")
    at.number_input(key="prune_age").set_value(5)
    at.number_input(key="prune_keep").set_value(2)
    at.button(key="prune_count").click().run()
    at.button(key="prune_ask").click().run()
    at.button(key="prune_delete").click().run()
    assert not at.exception
    assert [db.get_summary(t) is not None for t in made] == [True, True, False, False]


def test_a_changed_form_must_be_counted_again_and_cancel_deletes_nothing(env, db, ids) -> None:
    made = aged(db, ids("cancel"), [300])
    at = open_page("settings")
    at.button(key="prune_count").click().run()
    assert not at.button(key="prune_ask").disabled
    at.segmented_control(key="prune_unit").set_value("weeks").run()
    assert at.button(key="prune_ask").disabled
    at.button(key="prune_count").click().run()
    at.button(key="prune_ask").click().run()
    at.button(key="prune_cancel").click().run()
    assert not at.exception and db.get_summary(made[0]) is not None


def test_the_servers_schedule_is_shown(db_url: str) -> None:
    with dashboard_env(
        TRACEDB_URL=db_url, TRACEDB_AUTH=None, TRACEDB_RETENTION="30d keep=100 status=completed"
    ):
        at = open_page("settings")
        shown = " ".join(i.value for i in at.info).replace("\\", "")
        assert (
            "traces not updated for 30 d, of status completed, keeping each user's 100 newest, every 1 h"
            in shown
        )
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_AUTH=None, TRACEDB_RETENTION="soon"):
        at = open_page("settings")
        assert not at.exception and any("TRACEDB_RETENTION cannot be used" in e.value for e in at.error)


def test_a_signed_in_user_prunes_only_their_own(db, db_url: str, ids) -> None:
    mine, theirs = aged(db, "gus", [90, 91]), aged(db, "hal", [90])
    secret = db.create_api_key("gus")[1]
    with dashboard_env(TRACEDB_URL=db_url, TRACEDB_AUTH="keys", TRACEDB_RETENTION=None):
        at = open_page("settings")
        at.text_input(key="sign_in_key").input(secret)
        at.button(key="sign_in_submit").click().run()
        assert any("only your own traces" in c.value for c in at.caption)
        at.number_input(key="prune_age").set_value(60)
        at.button(key="prune_count").click().run()
        assert any("2 traces would go: your traces not updated for 60 d" in m.value for m in at.markdown)
        at.button(key="prune_ask").click().run()
        at.button(key="prune_delete").click().run()
        assert not at.exception
    assert all(db.get_summary(t) is None for t in mine)
    assert db.get_summary(theirs[0]) is not None
    assert db.count_traces(TraceFilter(user_id="gus")) == 0
