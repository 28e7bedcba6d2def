"""Jobs: start pipeline jobs as separate processes, watch their progress, browse the run history."""
from __future__ import annotations

import shlex

import pandas as pd
import streamlit as st

from hashtag_workbench.dashboard import launcher
from hashtag_workbench.dashboard.common import home
from hashtag_workbench.warehouse import dashboard_queries as q
from hashtag_workbench.warehouse.progress import read_progress
from hashtag_workbench.warehouse.runs import get_run, recent_runs

FEATURED = ("import-folder", "scrape-images", "scrape-hashtags", "features", "outliers", "train", "evaluate",
            "predict", "export", "demo", "check", "stats")

st.title("Jobs")
HOME = home()
H = str(HOME)
ss = st.session_state


@st.cache_data(ttl=600, show_spinner="Reading the job list ...")
def _commands() -> dict[str, str]:
    return launcher.commands(launcher.job_schema())


@st.cache_data(ttl=600, show_spinner=False)
def _spec(command: str) -> tuple[dict, str]:
    info = launcher.job_schema()[command]
    return launcher.form_spec(launcher.job_schema(), command), info["help"]


def _runs(h: str) -> list[dict]:
    # Not cached: one small query, and the history must show a job the moment it finishes.
    return recent_runs(h, limit=50)


def _bar(run_id: int) -> None:
    """The job's own progress bar (n of total, written by the job as it goes), when it has one."""
    p = read_progress(H, run_id)
    if not p:
        return
    total = p.get("total")
    text = f"{p['desc'] or 'progress'}: {p['n']}" + (f" / {total}" if total else "") + f" {p['unit']}"
    st.progress(min(1.0, p["n"] / total) if total else 0.0, text=text)


def _launched(rec: dict) -> None:
    """One job started from this dashboard: its run, progress, and (when it failed) why, in one line."""
    rc = rec["returncode"]
    state = "running" if rc is None else ("finished" if rc == 0 else f"ended with exit code {rc}")
    runs = [r for r in q.runs_since(H, rec["before_run_id"]) if r["kind"] == rec["command"]]
    log = launcher.log_tail(HOME, rec["log"])
    with st.expander(f"{shlex.join(rec['args'])} — {state}", expanded=rc is None or rc not in (0,)):
        if rc not in (None, 0):
            err = runs[0]["error"] if runs else None
            st.error(f"{rec['command']} failed: {launcher.failure_line(log, err)}")
        for r in runs[:1]:
            counts = r["counts"] or "{}"
            st.text(f"run {r['run_id']}: {r['status']} · counts {counts}"
                    + (f" · {r['duration_s']:.1f} s" if r["duration_s"] else ""))
            if rc is None:
                _bar(r["run_id"])
        st.caption("Log")
        st.code(log or "(no output yet)", language=None)
        if rc is None and st.button("Stop", key=f"stop_{rec['pid']}"):
            launcher.stop_job(rec["pid"])


# ---------------------------------------------------------------- start a job
msg = ss.pop("jobs_msg", None)
if msg:
    st.success(msg)
st.subheader("Start a job")
commands = _commands()
if not commands:
    st.error("Could not list the job commands (`hashtags --help` printed nothing useful).")
else:
    order = [c for c in FEATURED if c in commands] + sorted(c for c in commands if c not in FEATURED)
    missing = [c for c in ("outliers", "train", "evaluate") if c not in commands]
    command = st.selectbox("Job", order, format_func=lambda c: f"{c} — {commands[c]}", key="job_command")
    if missing:
        st.caption(f"Not in this build yet: {', '.join(missing)}.")
    spec, help_text = _spec(command)
    with st.form(f"job_form_{command}"):
        values: dict = {}
        for p in spec["positionals"]:
            values[p["name"]] = st.text_input(f"{p['name']} (required)", help=p["help"],
                                              key=f"jp_{command}_{p['name']}")
        cols = st.columns(2)
        for n, o in enumerate(spec["options"]):
            col = cols[n % 2]
            k = f"jo_{command}_{o['flag']}"
            if o["metavar"] is None:
                values[o["flag"]] = col.checkbox(o["flag"], help=o["help"], key=k)
            elif o["choices"]:
                pick = col.selectbox(o["flag"], ["(default)"] + o["choices"], help=o["help"], key=k)
                values[o["flag"]] = None if pick == "(default)" else pick
            else:
                values[o["flag"]] = col.text_input(o["flag"], help=o["help"], placeholder=o["help"][:80], key=k)
        extra = st.text_input("Extra arguments (optional)", key=f"jx_{command}",
                              help="passed as they are, e.g. --words dog,cat")
        submitted = st.form_submit_button("Start", type="primary")
    st.caption(f"`hashtags {command}`: {help_text}")
    if submitted:
        try:
            args = launcher.build_args(command, spec, values) + shlex.split(extra or "")
            rec = launcher.start_job(HOME, args, before_run_id=q.max_run_id(H))
        except ValueError as exc:
            st.error(f"Cannot start: {exc}")
        else:
            st.success(f"Started `hashtags {shlex.join(args)}` (process {rec['pid']}); "
                       f"its output goes to logs/{rec['log']}.")


# ---------------------------------------------------------------- progress of jobs started here
@st.fragment(run_every=2)
def _progress() -> None:
    running = q.running_runs(H)  # any job writing now, started here or from the command line
    if running:
        st.subheader("Running now")
        for r in running:
            st.text(f"run {r['run_id']} {r['kind']} (process {r['pid']}) since {r['started_at']:%H:%M:%S} · "
                    f"counts so far {r['counts'] or '{}'}")
            _bar(r["run_id"])
    started = launcher.launched(HOME, limit=5)
    if not started:
        return
    st.subheader("Started from the dashboard")
    for rec in started:
        _launched(rec)


_progress()

# ---------------------------------------------------------------- run history
st.subheader("Run history")
runs = _runs(H)
if not runs:
    st.info("No job has run yet. Start one above, or run:\n\n```\nhashtags demo\n```")
else:
    df = pd.DataFrame(runs)
    kinds = sorted(df["kind"].unique())
    shown = st.multiselect("Kinds (empty = all)", kinds, key="run_kinds")
    if shown:
        df = df[df["kind"].isin(shown)]
    df["error"] = df["error"].map(lambda e: e.strip().splitlines()[0] if isinstance(e, str) and e.strip() else "")
    df["duration"] = df["duration_s"].map(lambda s: "" if pd.isna(s) else f"{s:.1f} s")
    df["counts"] = df["counts"].map(lambda c: ", ".join(f"{k} {v}" for k, v in c.items()
                                                        if not isinstance(v, (list, dict))))
    st.dataframe(df[["run_id", "kind", "status", "started_at", "duration", "counts", "error"]], hide_index=True,
                 width="stretch")
    labels = {r["run_id"]: f"#{r['run_id']} {r['kind']} ({r['status']})" for r in runs}
    run_id = st.selectbox("Run details", list(labels), key="run_detail",
                          format_func=lambda i: labels.get(i, f"#{i}"))
    run = get_run(H, run_id)
    if run:
        c1, c2 = st.columns(2)
        c1.caption("Config")
        c1.json(run["config"])
        c2.caption("Counts")
        c2.json(run["counts"])
        if run.get("error"):
            st.caption("Error")
            st.code(run["error"], language=None)
        st.caption("Log")
        st.code(run.get("log") or "(no log lines kept for this run)", language=None)
