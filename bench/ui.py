"""UI benchmark: open the thread page of large traces in Streamlit's AppTest and time it.

Stores traces of ``--sizes`` entries (default 1,000, 10,000 and 50,000), then, for each, a
fresh child process opens ``pages/thread.py`` as ``thread?trace=<id>`` once to warm the
imports on a small trace (as a running server would be), and times the first open of the
big trace (nothing cached). Memory: the child's peak RSS growth during the open, and the
peak of Python allocations (tracemalloc) on a second, uncached open. ``--profile`` writes a
pyinstrument report of the open per size.

Targets: 10,000 entries < 2 s, 50,000 entries < 5 s.

Run: ``python -m bench.ui [--url URL] [--sizes 1000,10000,50000] [--json] [--profile DIR]``.
The benchmark creates a database of its own on the server and drops it afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

if not __package__:  # run as ``python bench/ui.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import admin_url, make_entry, temp_database  # noqa: E402
from tracedb import AutomationTraceDB  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "pages" / "thread.py"
APP = ROOT / "app.py"
TARGETS_S = {10_000: 2.0, 50_000: 5.0}
CHUNK = 2_000


def store_trace(db: AutomationTraceDB, size: int, seed: int) -> str:
    """A completed trace of ``size`` entries of about 400 B; returns its id."""
    rng = random.Random(seed)
    trace_id: str | None = None
    for start in range(0, size, CHUNK):
        part = [make_entry(i, rng, size=400) for i in range(start, min(size, start + CHUNK))]
        if trace_id is None:
            trace_id = db.append_entries(
                part, thread_id=f"ui-{size}-{seed}", user_id="bench", name=f"bench {size:,} entries"
            ).trace_id
        else:
            db.append_entries(part, trace_id=trace_id)
    assert trace_id is not None
    return trace_id


def rss_mib() -> float:
    """Peak resident memory of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    """Resident memory of this process now, MiB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_page(trace_id: str, timeout: float) -> tuple[float, Any]:
    """Run the thread page once for ``trace_id``; return (seconds, the AppTest)."""
    from streamlit.testing.v1 import AppTest

    # The page runs inside the app's frame (its navigation and sidebar), as in the browser.
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    at.switch_page(str(PAGE.relative_to(ROOT)))
    at.query_params["trace"] = trace_id
    t0 = time.perf_counter()
    at.run()
    return time.perf_counter() - t0, at


_ORIGINAL_RUN: Any = None


def profile_script_thread(out: Path) -> None:
    """Profile the next page run with pyinstrument, in the thread that runs the script
    (AppTest runs it in a thread of its own, which a profiler started here would not see)."""
    global _ORIGINAL_RUN
    from pyinstrument import Profiler
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

    _ORIGINAL_RUN = original = ScriptRunner._run_script

    def run_profiled(self: Any, rerun_data: Any) -> None:
        profiler = Profiler(interval=0.001)
        profiler.start()
        try:
            original(self, rerun_data)
        finally:
            profiler.stop()
            out.write_text(profiler.output_text(unicode=False, color=False, show_all=False))

    ScriptRunner._run_script = run_profiled  # type: ignore[method-assign]


def child(warm_id: str, trace_id: str, timeout: float, profile: str | None) -> dict[str, Any]:
    """In a fresh process: warm up on a small trace, then time and measure the big one."""
    os.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import streamlit as st

    warm_s, at = open_page(warm_id, timeout)
    if at.exception:
        return {"error": f"warm-up run failed: {at.exception[0].value}"}
    before = current_rss_mib()
    if profile:
        profile_script_thread(Path(profile))
    seconds, at = open_page(trace_id, timeout)
    if profile:
        from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

        ScriptRunner._run_script = _ORIGINAL_RUN  # type: ignore[method-assign]
    if at.exception:
        return {"error": f"page failed: {at.exception[0].value}"}
    peak = rss_mib()
    warm_again_s, _ = open_page(trace_id, timeout)
    st.cache_data.clear()
    tracemalloc.start()
    _, at = open_page(trace_id, timeout)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "seconds": round(seconds, 3),
        "cached_rerun_seconds": round(warm_again_s, 3),
        "warmup_seconds": round(warm_s, 3),
        "rss_before_mib": round(before, 1),
        "rss_peak_mib": round(peak, 1),
        "rss_growth_mib": round(peak - before, 1),
        "tracemalloc_peak_mib": round(traced_peak / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Store the traces, open each in a child process, print the figures."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.ui", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="server URL (default TRACEDB_URL, else the local socket)")
    parser.add_argument("--sizes", default="1000,10000,50000", help="entries per trace, comma separated")
    parser.add_argument("--smoke", action="store_true", help="small sizes, for a quick check")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed for one page run")
    parser.add_argument("--profile", metavar="DIR", help="write a pyinstrument report per size here")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument(
        "--child", nargs=3, metavar=("WARM_ID", "TRACE_ID", "PROFILE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        warm, trace, prof = args.child
        print(json.dumps(child(warm, trace, args.timeout, prof or None)))
        return 0
    sizes = [200, 1000] if args.smoke else [int(s) for s in args.sizes.split(",")]
    if not PAGE.exists():
        print(f"{PAGE} does not exist yet: nothing to measure")
        return 0
    results: dict[str, Any] = {}
    with temp_database(admin_url(args.url), "ui") as url:
        with AutomationTraceDB(url, max_size=2) as db:
            warm_id = store_trace(db, 20, seed=0)
            ids = {size: store_trace(db, size, seed=size) for size in sizes}
        env = {**os.environ, "TRACEDB_URL": url}
        for size in sizes:
            prof = ""
            if args.profile:
                Path(args.profile).mkdir(parents=True, exist_ok=True)
                prof = str(Path(args.profile) / f"thread_{size}.txt")
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.ui",
                    "--timeout",
                    str(args.timeout),
                    "--child",
                    warm_id,
                    ids[size],
                    prof,
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not lines:
                results[str(size)] = {"error": (proc.stderr or proc.stdout)[-2000:]}
                continue
            figures = json.loads(lines[-1])
            target = TARGETS_S.get(size)
            figures["target_s"] = target
            if "seconds" in figures:
                figures["met"] = None if target is None else figures["seconds"] < target
            results[str(size)] = figures
    failed = [s for s, r in results.items() if "error" in r]
    if args.json:
        print(
            json.dumps(
                {
                    "sizes": results,
                    "all_targets_met": not failed
                    and all(r.get("met") is not False for r in results.values()),
                }
            )
        )
    else:
        print(
            f"{'entries':>8}{'open s':>9}{'target':>8}{'cached s':>10}{'RSS +MiB':>10}"
            f"{'RSS peak':>10}{'tracemalloc MiB':>17}"
        )
        for size, r in results.items():
            if "error" in r:
                print(f"{int(size):>8,}  ERROR {r['error']}")
                continue
            target = f"<{r['target_s']:g}" if r["target_s"] else ""
            met = "" if r.get("met") is None else ("ok" if r["met"] else "SLOW")
            print(
                f"{int(size):>8,}{r['seconds']:>9.2f}{target:>6}{met:>4}{r['cached_rerun_seconds']:>8.2f}"
                f"{r['rss_growth_mib']:>10.0f}{r['rss_peak_mib']:>10.0f}{r['tracemalloc_peak_mib']:>17.1f}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
