"""Settings: retention. Prune the traces not updated for a while, optionally keeping each
user's newest and only of one status: count first, confirm, then delete and report. Shows
the schedule the API server prunes on (``TRACEDB_RETENTION``)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from dashboard import common, human, navigation
from tracedb import AutomationTraceDB, InvalidTraceData
from tracedb.models import STATUSES
from tracedb.retention import ENV, RetentionPolicy

UNITS = {"days": timedelta(days=1), "hours": timedelta(hours=1), "weeks": timedelta(weeks=1)}
ANY_STATUS = "any status"
COUNTED_KEY = "prune_counted"
CONFIRM_KEY = "prune_confirm"
FLASH_KEY = "settings_flash"


def policy_section() -> None:
    """What the API server prunes on its own, if anything."""
    try:
        policy = RetentionPolicy.from_env()
    except InvalidTraceData as exc:
        st.error(f"{ENV} cannot be used: {exc}")
        return
    if policy is None:
        st.caption(
            f"No {ENV} is set: nothing is pruned on a schedule. Set it (e.g. `30d keep=100`) for the API "
            "server (`python -m tracedb serve`) to prune every hour."
        )
        return
    st.info(
        f"The API server prunes on a schedule ({ENV}={common.as_plain_markdown(os.environ[ENV].strip())}): "
        f"{common.as_plain_markdown(describe(policy_request(policy), False))}, every "
        f"{human.duration(policy.every.total_seconds() * 1000)}.",
        icon=":material/schedule:",
    )


def policy_request(policy: RetentionPolicy) -> dict[str, Any]:
    """A policy as the request it makes every round."""
    return {
        "older_than": policy.older_than,
        "keep_last": policy.keep_last,
        "status": ", ".join(policy.status) if policy.status else None,
    }


def request_from_form(age: float, unit: str, keep: int, status: str) -> dict[str, Any]:
    """What a prune is asked to do, as the store takes it."""
    return {
        "older_than": UNITS[unit] * age,
        "keep_last": int(keep),
        "status": None if status == ANY_STATUS else status,
    }


def describe(request: dict[str, Any], scoped: bool) -> str:
    """A request in words: ``"your traces not updated for 30 days, of status completed,
    keeping your 10 newest"``."""
    whose = "your traces" if scoped else "traces"
    words = f"{whose} not updated for {human.duration(request['older_than'].total_seconds() * 1000)}"
    if request["status"]:
        words += f", of status {request['status']}"
    if request["keep_last"]:
        newest = "your" if scoped else "each user's"
        words += f", keeping {newest} {request['keep_last']:,} newest"
    return words


def forget_count() -> None:
    st.session_state.pop(COUNTED_KEY, None)
    st.session_state.pop(CONFIRM_KEY, None)


@st.dialog("Delete old traces", on_dismiss=forget_count)
def confirm(db: AutomationTraceDB, counted: dict[str, Any]) -> None:
    request, n = counted["request"], counted["count"]
    st.write(
        f"Delete {human.count(n, 'trace')}: {describe(request, bool(db.user_scope))}, with their entries?"
    )
    st.caption("This cannot be undone. Traces that aged meanwhile go too: the report says how many went.")
    with st.container(horizontal=True):
        delete = st.button(f"Delete {n:,}", type="primary", key="prune_delete")
        cancel = st.button("Cancel", key="prune_cancel")
    if delete:
        with st.spinner("Deleting…"):
            deleted = db.prune(
                request["older_than"], keep_last=request["keep_last"], status=request["status"]
            )
        forget_count()
        st.session_state[FLASH_KEY] = (
            f"Deleted {human.count(deleted, 'trace')} ({describe(request, bool(db.user_scope))})."
        )
        st.cache_data.clear()
        st.rerun()
    if cancel:
        forget_count()
        st.rerun()


# ---------------------------------------------------------------------------------------

navigation.require_app()
db = common.require_db()
st.title("Settings")
if flash := st.session_state.pop(FLASH_KEY, None):
    st.success(flash)

st.subheader("Retention")
policy_section()
if db.user_scope:
    st.caption("You are signed in: pruning here deletes only your own traces.")
with st.container(horizontal=True, vertical_alignment="bottom"):
    age = st.number_input(
        "Delete traces not updated for", min_value=1, value=30, step=1, key="prune_age", width=200
    )
    unit = st.segmented_control("Unit", list(UNITS), default="days", key="prune_unit") or "days"
    keep = st.number_input(
        "Keep each user's newest" if not db.user_scope else "Keep your newest",
        min_value=0,
        value=0,
        step=10,
        key="prune_keep",
        help="However old: the most recently updated traces of each user are kept",
        width=200,
    )
    status = st.selectbox("Only of status", [ANY_STATUS, *STATUSES], key="prune_status", width=200)
request = request_from_form(age, unit, keep, status)
counted = st.session_state.get(COUNTED_KEY)
if counted and counted["request"] != request:  # the form changed since: count again
    forget_count()
    counted = None

with st.container(horizontal=True, vertical_alignment="center"):
    if st.button("Count", key="prune_count", icon=":material/calculate:"):
        n = db.prune(
            request["older_than"], keep_last=request["keep_last"], status=request["status"], dry_run=True
        )
        counted = {"request": request, "count": n, "at": datetime.now(UTC)}
        st.session_state[COUNTED_KEY] = counted
    st.button(
        f"Delete {counted['count']:,}…" if counted else "Delete…",
        key="prune_ask",
        type="primary",
        icon=":material/delete_sweep:",
        disabled=not counted or counted["count"] == 0,
        help="Count first",
        on_click=lambda: st.session_state.update({CONFIRM_KEY: True}),
    )
if counted:
    before = counted["at"] - request["older_than"]
    st.write(
        f"{human.count(counted['count'], 'trace')} would go: {describe(request, bool(db.user_scope))} "
        f"(last updated before {before:%Y-%m-%d %H:%M} UTC)."
    )
else:
    st.caption("Count what would go first; deleting asks once more.")

if counted and st.session_state.get(CONFIRM_KEY):
    confirm(db, counted)
