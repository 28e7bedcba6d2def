"""Jobs: start pipeline jobs as separate processes, watch their progress and logs live, browse the run history."""
from __future__ import annotations

import shlex
import time

import pandas as pd
import streamlit as st

from hashtag_workbench.dashboard import launcher
from hashtag_workbench.dashboard.common import COLLECT_REQUEST, home, words
from hashtag_workbench.infra.procs import pid_alive
from hashtag_workbench.warehouse import dashboard_queries as q
from hashtag_workbench.warehouse.collect import stored_counts
from hashtag_workbench.warehouse.progress import read_progress
from hashtag_workbench.warehouse.runs import get_run, recent_runs

FEATURED = ("import-folder", "scrape-images", "scrape-hashtags", "features", "outliers", "train", "evaluate",
            "predict", "export", "demo", "check", "stats")
SCRAPE = "scrape-images"
POLL_S = 2        # while a job runs
IDLE_POLL_S = 10  # otherwise: a job started from a terminal still shows up without a click

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


@st.cache_data(ttl=10, show_spinner=False)
def _stored(h: str, active: tuple[str, ...]) -> dict[str, int]:
    return stored_counts(h, list(active))


def _runs(h: str) -> list[dict]:
    # Not cached: one small query, and the history must show a job the moment it finishes.
    return recent_runs(h, limit=50)


def _bar(run_id: int, running: bool = True) -> None:
    """The job's own progress bar (n of total, written by the job as it goes, from its progress file)."""
    p = read_progress(H, run_id)
    if not p:
        if running:
            st.progress(0.0, text="started; no progress reported yet")
        return
    total = p.get("total")
    ago = max(0.0, time.time() - float(p.get("updated") or time.time()))
    text = (f"{p['desc'] or 'progress'}: {p['n']}" + (f" / {total}" if total else "") + f" {p['unit']}"
            + (f" ({p['n'] / total:.0%})" if total else "") + (f" · updated {ago:.0f} s ago" if running else ""))
    st.progress(min(1.0, p["n"] / total) if total else 0.0, text=text)


def _state(rc) -> str:
    return "running" if rc is None else ("finished" if rc == 0 else f"ended with exit code {rc}")


def _launched(rec: dict, runs: list[dict]) -> None:
    """One job started from this dashboard: its run, live progress, its log (kept visible after it ends)."""
    rc = rec["returncode"]
    mine = [r for r in runs if r.get("pid") == rec["pid"]] or [r for r in runs if r["kind"] == rec["command"]]
    log = launcher.log_tail(HOME, rec["log"])
    slot = st.empty()
    with slot.container(border=True):
        head, act = st.columns([6, 1])
        head.markdown(f"**`{shlex.join(rec['args'])}`** — {_state(rc)} · started "
                      f"{time.strftime('%H:%M:%S', time.localtime(rec['started']))}")
        if rc is None:
            if act.button("Stop", key=f"stop_{rec['log']}"):
                launcher.stop_job(rec["pid"])
                st.toast(f"Asked {rec['command']} to stop (it keeps what it has done).")
        elif act.button("Dismiss", key=f"dismiss_{rec['log']}", help="hide this job here (its run stays in the "
                                                                       "history below)"):
            launcher.dismiss(HOME, rec["log"])
            slot.empty()
            return
        for r in mine[:1]:
            _bar(r["run_id"], running=rc is None)
            if r["duration_s"]:
                st.caption(f"run {r['run_id']}: {r['status']} in {r['duration_s']:.1f} s")
        if rc is None and not mine:
            st.progress(0.0, text="starting ...")
        if rc not in (None, 0):
            err = mine[0]["error"] if mine else None
            st.error(f"{rec['command']} failed: {launcher.failure_line(log, err)}")
        empty = "(no output yet: the progress bar above is live)" if rc is None else "(it printed nothing)"
        st.code(log or empty, language=None, height=220 if log.count("\n") > 9 else "content")


def _live_fragment(live: bool):
    """The live section re-runs on its own every POLL_S seconds while something runs, else every IDLE_POLL_S
    (only this section: the form below keeps what is being typed)."""
    @st.fragment(run_every=POLL_S if live else IDLE_POLL_S)
    def _live() -> None:
        started = launcher.launched(HOME, limit=6)
        runs = q.runs_since(H, min((r["before_run_id"] for r in started), default=q.max_run_id(H)))
        launched_pids = {r["pid"] for r in started}
        running = [r for r in q.running_runs(H) if pid_alive(r["pid"]) and r["pid"] not in launched_pids]
        if running:
            st.subheader("Running now (started elsewhere)")
            for r in running:
                with st.container(border=True):
                    st.markdown(f"**{r['kind']}** · run {r['run_id']} · process {r['pid']} · since "
                                f"{r['started_at']:%H:%M:%S} (its output goes to the terminal that started it)")
                    _bar(r["run_id"])
        if started:
            st.subheader("Started from the dashboard")
            for rec in started:
                _launched(rec, runs)
        elif not running:
            st.caption("No job running. Start one below.")
    return _live


def _collect() -> None:
    """scrape-images, asked first: which words, how many photos per word, the total, then a confirmation."""
    active = words(H, active_only=True)
    if not active:
        st.info("No active words to collect photos for: add words on the Words page first.")
        return
    stored = _stored(H, tuple(active))
    c1, c2 = st.columns([3, 1])
    per = int(c2.number_input("Photos per word (counting those stored)", min_value=1, max_value=2000, value=200,
                              step=10, key="collect_per"))
    below = [w for w in active if stored.get(w, 0) < per]
    if c2.button(f"Choose the {len(below)} words below {per}", key="collect_below"):
        ss["collect_words"] = below
    chosen = c1.multiselect("Words", active, key="collect_words", placeholder="choose words",
                            format_func=lambda w: f"{w} ({stored.get(w, 0)} stored)")
    plan = launcher.collect_plan({w: stored.get(w, 0) for w in chosen}, per)
    total = sum(plan.values())
    have = sum(stored.get(w, 0) for w in chosen)
    st.markdown(f"**{len(chosen)} word{'s' if len(chosen) != 1 else ''}, {total:,} photos to download** "
                f"from DuckDuckGo image search (up to {per} per word, counting the {have:,} already stored).")
    # the confirmation belongs to this plan: changing the words or the count asks again
    sure = st.checkbox(f"Yes, download up to {total:,} photos", key=f"collect_sure_{total}_{len(chosen)}",
                       disabled=total == 0)
    if st.button("Start collecting", type="primary", key="collect_start", disabled=total == 0):
        if not sure:
            st.warning("Nothing started: tick the confirmation first.")
            return
        _start([SCRAPE, "--words", ",".join(chosen), "--per-class", str(per)])


def _start(args: list[str]) -> None:
    try:
        rec = launcher.start_job(HOME, args, before_run_id=q.max_run_id(H))
    except (ValueError, OSError) as exc:
        st.error(f"Cannot start: {exc}")
        return
    ss["jobs_msg"] = f"Started `hashtags {shlex.join(args)}` (process {rec['pid']})."
    st.rerun()  # the live section below the title picks it up at once


def _job_form(command: str, spec: dict) -> None:
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
    if submitted:
        try:
            args = launcher.build_args(command, spec, values) + shlex.split(extra or "")
        except ValueError as exc:
            st.error(f"Cannot start: {exc}")
        else:
            _start(args)


def _history() -> None:
    st.subheader("Run history")
    runs = _runs(H)
    if not runs:
        st.info("No job has run yet. Start one above, or run:\n\n```\nhashtags demo\n```")
        return
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


# ---------------------------------------------------------------- page
msg = ss.pop("jobs_msg", None)
if msg:
    st.toast(msg)
if ss.pop(COLLECT_REQUEST, None):          # "Collect more images" elsewhere: ask here first
    ss["job_command"] = SCRAPE

live = any(r["returncode"] is None for r in launcher.launched(HOME, limit=6)) or any(
    pid_alive(r["pid"]) for r in q.running_runs(H))
_live_fragment(live)()

st.subheader("Start a job")
commands = _commands()
if not commands:
    st.error("Could not list the job commands (`hashtags --help` printed nothing useful).")
else:
    order = [c for c in FEATURED if c in commands] + sorted(c for c in commands if c not in FEATURED)
    command = st.selectbox("Job", order, format_func=lambda c: f"{c} — {commands[c]}", key="job_command")
    spec, help_text = _spec(command)
    if command == SCRAPE:
        _collect()
    else:
        _job_form(command, spec)
    st.caption(f"`hashtags {command}`: {help_text}")

_history()
