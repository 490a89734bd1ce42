"""Learning across runs: the experience store, mining, and plans that avoid what failed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from relaygraph.coordination.experience import Experience, FailureRecord, input_failure, mine, reputations
from relaygraph.coordination.world import DATA_DOMAIN

PRIOR = {m.name: m.success_probability for m in DATA_DOMAIN.methods}


def planned_runs(cast, *runs: str) -> None:
    """Scripts for planned runs in order: ``failed`` (trends keeps failing, injected, after
    validate, clean and aggregate ran: replanned without trends, so outliers and the report
    follow), ``time_series`` (the whole first plan) or ``cross_section`` (the plan without
    trends), each run with a report and a critique that finds nothing."""
    from test_planned import CRITIC, CRITIC_CALLS, CRITIC_TREND_CALLS, agent

    analyses = {"failed": ["aggregate", "detect_outliers"],
                "time_series": ["aggregate", "detect_trends", "detect_outliers"],
                "cross_section": ["aggregate", "detect_outliers"]}
    for run in runs:
        for role, tool in (("validator", "validate_dataset"), ("cleaner", "clean_dataset")):
            cast.scripts.setdefault(role, []).extend(agent(tool))
        for tool in analyses[run]:
            cast.scripts.setdefault("analyst", []).extend(agent(tool))
        cast.scripts.setdefault("reporter", []).extend(agent("write_report"))
        cast.scripts.setdefault(CRITIC, []).extend(CRITIC_TREND_CALLS if run == "time_series" else CRITIC_CALLS)


def exp(i: int, methods: list[str], failures: list[FailureRecord] = (), outcome: str = "completed") -> Experience:
    return Experience(thread_id=f"t{i}", task_type="data_report", methods=methods, outcome=outcome,
                      failures=list(failures), task_agents={"trends": "analyst", "clean": "cleaner"},
                      tasks_completed=["clean"], recorded_at=float(i + 1))


def test_mining_by_hand():
    failed = FailureRecord(task="trends", method="time_series_analysis", agent="analyst",
                           failure_class="transient", action="stop")
    retried = FailureRecord(task="trends", method="time_series_analysis", agent="analyst",
                            failure_class="transient", action="retry")
    runs = [exp(i, ["time_series_analysis"], [retried, retried, retried, failed], "failed") for i in range(3)]
    assert mine(runs[:2], PRIOR, task_type="data_report") == []  # fewer than 3: nothing learned
    learned = {(a.kind, a.target): a for a in mine(runs, PRIOR, task_type="data_report")}
    ts = learned[("method_probability", "time_series_analysis")]
    assert ts.value == pytest.approx((0.9 * 5 + 0) / (5 + 3)) and ts.previous == 0.9
    assert ts.evidence == "succeeded in 0 of 3 runs that used it"
    assert learned[("retry_backoff", "transient")].value == 1.0  # 3 retries per run on average: double 0.5
    # a retry that got past a transient failure does not count against the method
    ok = mine([exp(i, ["time_series_analysis"], [retried]) for i in range(3)], PRIOR, task_type="data_report")
    assert {a.target: a.value for a in ok if a.kind == "method_probability"}["time_series_analysis"] == pytest.approx((0.9 * 5 + 3) / 8)
    assert reputations(runs) == {"analyst": round(1 / (12 + 2), 4), "cleaner": round(4 / 5, 4)}
    ranked = mine(runs, PRIOR, task_type="data_report")
    assert [a.impact for a in ranked] == sorted((a.impact for a in ranked), reverse=True)


def test_store_is_bounded_and_migrated(sqlite_url):
    from relaygraph.nodes import experience as store

    for i in range(1001):
        size = store.record(sqlite_url, exp(i, ["clean_only"]))
    assert size == 800
    kept = store.load(sqlite_url, "data_report")
    assert [e.thread_id for e in kept] == [f"t{i}" for i in range(201, 1001)]  # the newest 800
    store.record(sqlite_url, exp(1000, ["validate_and_clean"]))  # the same thread again: replaced
    assert store.stores(sqlite_url) == {"data_report": 800}
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT max(v) FROM relaygraph_experience_migrations")).scalar() == 1


def test_a_method_that_failed_in_three_runs_is_avoided_by_the_next_plan(cast, sample_path):
    from relaygraph.cli.main import app
    from relaygraph.graphs.planned import build_graph
    from typer.testing import CliRunner

    planned_runs(cast, "failed", "failed", "failed", "cross_section", "time_series")

    graph = build_graph().compile()

    def run(i: int, **options):
        config = {"configurable": {"thread_id": f"learn-{i}", "retry_backoff_s": 0, "learn_injected": True,
                                   **options}, "recursion_limit": 200}
        return graph.invoke({"task": "report"}, config)["result"]

    for i in range(3):  # trends keeps timing out: time_series_analysis is replanned away three times
        failed = run(i, fail="trends:transientx4")
        assert failed["status"] == "partial" and failed["plan"]["methods"][-1] == "cross_section_analysis"
        assert failed["replanning"][-1]["changes"]["exclude_methods"] == ["time_series_analysis"]
    result = run(3, fail="trends:transientx4")
    # partial: the trend section the run would have had is left out by what was learned, and it says so
    assert result["status"] == "partial" and result["reason"].startswith("left out: trend (learned: time_series_")
    assert result["plan"]["methods"][-1] == "cross_section_analysis"
    assert result["learned"]["time_series_analysis"] == pytest.approx(0.9 * 5 / (5 + 3))  # Beta prior, k = 5
    assert result["experience_store"] == {"store": "data_report", "size": 4}
    unlearned = run(4, learn="false")  # the same store, learning off: the prior's choice again
    assert unlearned["plan"]["methods"][-1] == "time_series_analysis" and unlearned["learned"] == {}

    shown = CliRunner().invoke(app, ["experience", "show"])
    assert shown.exit_code == 0, shown.output
    assert "store data_report: 5 experiences (1 completed, 4 partial)" in shown.output
    assert "time_series_analysis: 0.9 -> 0.6111 (succeeded in 1 of 4 runs that used it" in shown.output
    assert "method_probability time_series_analysis: 0.9 -> " in shown.output
    assert CliRunner().invoke(app, ["experience", "show", "--store", "nope"]).exit_code == 2


def test_learned_timeout_and_retry_settings_are_enforced_in_the_next_run(cast, sample_path, monkeypatch):
    """Three runs in which aggregate timed out twice before a retry got through teach its timeout
    (5 × the 95th percentile of its successful runs, at least the floor — lowered here from 15 s
    to 2 s, so that the cut is seen in seconds) and a doubled retry backoff; the next run's
    slow analyst is cut at the timeout, and the cut is a transient timeout that follows its
    policy with the learned backoff."""
    import threading
    import time

    from relaygraph.config.settings import settings_from_config
    from relaygraph.graphs.planned import build_graph
    from relaygraph.nodes import experience as store
    from test_planned import CRITIC, CRITIC_TREND_CALLS, agent, on_given

    monkeypatch.setattr("relaygraph.coordination.experience.MIN_TIMEOUT_S", 2.0)
    url = settings_from_config({}).checkpoint_db
    timed_out = FailureRecord(task="aggregate", method="time_series_analysis", agent="analyst",
                              failure_class="transient", action="retry")
    for i in range(3):
        store.record(url, exp(i, ["prepare_analyse_report", "validate_and_clean", "time_series_analysis"],
                              [timed_out, timed_out]).model_copy(update={"durations": {"aggregate": 0.05 * (i + 1)}}))
    released = threading.Event()

    def hangs(brief):  # a model call that answers only after the test lets it: cut by the timeout
        released.wait(60)
        return ("final", "too late")

    def slow(brief):  # the same slow model, with no timeout to cut it
        time.sleep(2.6)
        return on_given("aggregate")(brief)

    # the learned run: aggregate's first and three retried runs are each cut in their first model call
    # (taken from the script when it starts, so what a cut call consumes does not depend on timing);
    # the unlearned run: the whole first plan, its slow aggregate let through
    cast.scripts.update({"validator": agent("validate_dataset") * 2, "cleaner": agent("clean_dataset") * 2,
                         "analyst": [hangs] * 4 + agent(slow) + agent("detect_trends") + agent("detect_outliers"),
                         "reporter": agent("write_report"), CRITIC: list(CRITIC_TREND_CALLS)})
    graph = build_graph().compile()

    def run(thread: str, **options):
        config = {"configurable": {"thread_id": thread, "max_retries": 1, **options}, "recursion_limit": 200}
        return graph.invoke({"task": "report"}, config)

    state = run("slow-learned")
    result = state["result"]
    assert result["plan"]["timeouts"] == {"aggregate": 2.0}  # the learned value, applied to the run
    assert result["status"] == "failed" and "transient failure persisted after 3 retries" in result["reason"]
    assert [(e["failure_class"], e["action"]) for e in result["replanning"]] == [("transient", "retry")] * 3 + [
        ("transient", "stop")]
    assert [e["policy"] for e in result["replanning"][:3]] == [  # the learned backoff base: 1 s, not 0.5 s
        f"retry {n} of 3 after {2 ** (n - 1)}s backoff" for n in (1, 2, 3)]
    assert all("analyst timed out after 2s (its timeout)" in e["error"] and e["timeout_s"] == 2.0
               for e in result["replanning"])
    again = mine(store.load(url, "data_report"), PRIOR, task_type="data_report")
    assert {a.target: a.value for a in again if a.kind == "timeout"}["aggregate"] == 4.0  # it stopped a run
    cut = [p for p in state["progress"] if p["status"] == "failed"]
    assert [p["node"] for p in cut] == [f"aggregate#{n}" for n in range(1, 5)]
    # cut by the timeout: each cut call was still waiting on ``released`` (so nothing else ended it),
    # and a timeout never fires before its 2 s (only a lower bound: load can only make it later)
    assert all(p["duration_s"] >= 1.95 for p in cut)
    assert not [s for s in state["steps"] if s["tool"] == "aggregate"]  # no tool ran past the deadline

    released.set()  # the cut calls end; their answers are discarded
    unlearned = run("slow-unlearned", learn="false", retry_backoff_s=0)["result"]  # the same slow agent
    assert unlearned["plan"]["timeouts"] == {} and unlearned["status"] == "completed"


def test_a_timeout_that_stopped_runs_grows():
    """A cut task leaves no successful duration, so without this a too-short timeout would stop
    every later run: each run it stopped doubles it."""
    from relaygraph.coordination.experience import timeouts

    cut = FailureRecord(task="aggregate", failure_class="transient", action="stop", timeout_s=2.0)
    retried = FailureRecord(task="aggregate", failure_class="transient", action="retry", timeout_s=2.0)
    runs = [exp(i, ["time_series_analysis"]).model_copy(update={"durations": {"aggregate": 0.4, "report": 4.0}})
            for i in range(3)]
    assert {a.target: a.value for a in timeouts(runs)} == {"aggregate": 15.0, "report": 20.0}
    runs += [exp(3 + i, ["time_series_analysis"], [retried, cut], "failed") for i in range(2)]
    learned = {a.target: a for a in timeouts(runs)}
    assert learned["aggregate"].value == 60.0 and learned["report"].value == 20.0
    assert learned["aggregate"].evidence == ("p95 of 3 successful runs 0.40s × 5 = 2.00s; floor 15s -> 15s (the floor); "
                                             "its timeout stopped 2 runs: doubled 2x")
    assert learned["report"].evidence == "p95 of 3 successful runs 4.00s × 5 = 20.00s; floor 15s -> 20s (the largest)"


def test_a_learned_timeout_never_cuts_a_slow_moment_of_a_fast_task():
    """Runs of 0.1–0.8 s (the stranger's, D8) teach no 2 s timeout: the floor holds, and the
    evidence says how the value was derived; one outlier among twenty runs is the p95's to skip."""
    from relaygraph.coordination.experience import MIN_TIMEOUT_S, timeouts

    fast = [exp(i, ["time_series_analysis"]).model_copy(update={"durations": {"validate": 0.1 + 0.7 * i / 19}})
            for i in range(20)]
    assert {a.target: a.value for a in timeouts(fast)} == {"validate": MIN_TIMEOUT_S}
    spiky = fast[:19] + [fast[19].model_copy(update={"durations": {"validate": 30.0}})]
    learned = {a.target: a for a in timeouts(spiky)}
    assert learned["validate"].value == MIN_TIMEOUT_S and "p95 of 20 successful runs 0.76s" in learned["validate"].evidence


def test_experiences_live_in_the_run_s_own_checkpoint_database(cast, sample_path, tmp_path):
    """Runs on different ``--checkpoint-db`` databases do not learn from each other, and
    ``experience show --checkpoint-db`` shows the experiences of the runs on that database."""
    planned_runs(cast, "failed", "failed", "failed", "time_series", "cross_section")
    from relaygraph.cli.main import app
    from relaygraph.config.checkpointing import open_checkpointer
    from relaygraph.graphs.planned import build_graph
    from typer.testing import CliRunner

    first, second = f"sqlite:///{tmp_path / 'first.db'}", f"sqlite:///{tmp_path / 'second.db'}"

    def run(url: str, i: int, **options):
        config = {"configurable": {"thread_id": f"db-{i}", "retry_backoff_s": 0, "learn_injected": True, **options},
                  "recursion_limit": 200}
        with open_checkpointer(url) as saver:
            return build_graph().compile(checkpointer=saver).invoke({"task": "report"}, config)["result"]

    for i in range(3):  # time_series_analysis fails (is replanned away in) three runs on the first database
        assert run(first, i, fail="trends:transientx4")["status"] == "partial"
    other = run(second, 3)  # the second database has learned nothing from them
    assert other["plan"]["methods"][-1] == "time_series_analysis" and other["learned"] == {}
    assert other["experience_store"] == {"store": "data_report", "size": 1}
    again = run(first, 4, fail="trends:transientx4")  # the first database has
    assert again["plan"]["methods"][-1] == "cross_section_analysis"
    assert again["experience_store"] == {"store": "data_report", "size": 4}

    shown = CliRunner().invoke(app, ["experience", "show", "--checkpoint-db", first])
    assert shown.exit_code == 0, shown.output
    assert "store data_report: 4 experiences (4 partial)" in shown.output
    shown = CliRunner().invoke(app, ["experience", "show", "--checkpoint-db", second])
    assert "store data_report: 1 experiences (1 completed)" in shown.output, shown.output
    default = CliRunner().invoke(app, ["experience", "show"])  # nothing went to the default database
    assert "No experiences recorded yet" in default.output, default.output


# --- what counts as evidence (injected failures, the data's faults, few observations) -----------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

METHODS = ["time_series_analysis", "cross_section_analysis", "validate_and_clean"]
TASK_OF = {"time_series_analysis": "trends", "cross_section_analysis": "aggregate", "validate_and_clean": "clean"}


@st.composite
def failures(draw, injected: bool | None = None):
    method = draw(st.sampled_from(METHODS))
    cls = draw(st.sampled_from(["transient", "resource", "data_quality", "schema", "dependency", "unknown"]))
    action = draw(st.sampled_from(["retry", "replan", "stop"]))
    excluded = draw(st.sampled_from([[], [method]]))
    return FailureRecord(task=TASK_OF[method], method=method, agent="analyst", failure_class=cls, action=action,
                         excluded=excluded, timeout_s=draw(st.sampled_from([None, 2.0])),
                         injected=draw(st.booleans()) if injected is None else injected)


runs_strategy = st.lists(st.tuples(st.lists(failures(injected=False), max_size=3),
                                   st.lists(failures(injected=True), max_size=3),
                                   st.floats(0.01, 5.0)), min_size=3, max_size=8)


def _learned(runs):
    return {(a.kind, a.target): a.value for a in mine(runs, PRIOR, task_type="data_report")
            if a.kind != "reputation"} | {("reputation", k): v for k, v in reputations(runs).items()}


@settings(max_examples=60, deadline=None)
@given(runs_strategy, st.lists(st.sets(st.sampled_from(METHODS)), min_size=8, max_size=8))
def test_injected_failures_never_change_what_is_learned(runs, finished):
    """Injected failures (``--param fail=``) are demonstrations: whatever else happened, a store
    with them learns exactly what the same store without them learns (what finished is what
    finished: a method an injection dropped is in no run's ``finished_methods``)."""
    def build(with_injected: bool):
        return [exp(i, METHODS, real + (injected if with_injected else []), "completed")
                .model_copy(update={"durations": {"aggregate": d}, "finished_methods": sorted(finished[i])})
                for i, (real, injected, d) in enumerate(runs)]
    assert _learned(build(True)) == _learned(build(False))


# --- what a run is evidence of: uses, successes, input failures (issue 14, findings A1/A2) -------

NOT_THE_METHOD = {"data_quality", "dependency", "resource"}
INPUT_ERRORS = ["aggregate: ValueError: No category column found; pass group_by with a column name.",
                "Data file semi.csv has 1 column; nothing to analyse.",
                "data '../../etc/passwd' is outside the data directory: give a file name relative to it"]


@st.composite
def histories(draw):
    """Random stores in the new record format: per run the methods planned, the ones whose tasks
    finished, failures (real and injected, with any error) and sometimes an input failure."""
    out = []
    for i in range(draw(st.integers(3, 10))):
        methods = draw(st.lists(st.sampled_from(METHODS), min_size=1, max_size=4))
        fails = draw(st.lists(failures(), max_size=3))
        bad_input = draw(st.sampled_from([None, None, *INPUT_ERRORS]))
        if bad_input:
            fails.append(FailureRecord(task="aggregate", method="cross_section_analysis", agent="analyst",
                                       failure_class="unknown", action="stop", excluded=[], error=bad_input))
        record = exp(i, methods, fails, draw(st.sampled_from(["completed", "partial", "failed"])))
        out.append(record.model_copy(update={
            "finished_methods": sorted(draw(st.sets(st.sampled_from(methods)))),
            "input_failure": input_failure(fails), "durations": {"aggregate": draw(st.floats(0.01, 5.0))}}))
    return out


def by_hand(runs: list[Experience]) -> dict[str, tuple[int, int]]:
    """(successes, uses) per method, counted from the records the long way round."""
    counts: dict[str, list[int]] = {}
    for run in runs:
        if any(f.error in INPUT_ERRORS for f in run.failures):
            continue
        for method in set(run.methods):
            own = [f for f in run.failures if f.method == method and not f.injected
                   and f.failure_class not in NOT_THE_METHOD
                   and (f.action == "stop" or (f.action == "replan" and method in (f.excluded or [])))]
            if own:
                counts.setdefault(method, [0, 0])[1] += 1
            elif method in run.finished_methods:
                counts.setdefault(method, [0, 0])[0] += 1
                counts[method][1] += 1
    return {m: (won, used) for m, (won, used) in counts.items()}


def shown(runs: list[Experience]) -> dict[str, tuple[int, int]]:
    """(successes, uses) per method as ``experience show`` states them."""
    import re

    out = {}
    for a in mine(runs, PRIOR, task_type="data_report"):
        if a.kind == "method_probability":
            won, used = re.match(r"succeeded in (\d+) of (\d+) runs that used it", a.evidence).groups()
            out[a.target] = (int(won), int(used))
    return out


@settings(max_examples=80, deadline=None)
@given(histories())
def test_input_failure_runs_never_change_any_method_statistic(runs):
    """(a) A run that failed because of its input (the stranger's ``;`` files) is left out of
    everything mined: the store learns what it learns without those runs."""
    clean = [r for r in runs if not r.input_failure]
    assert mine(runs, PRIOR, task_type="data_report") == mine(clean, PRIOR, task_type="data_report")
    assert all(r.input_failure for r in runs if any(f.error in INPUT_ERRORS for f in r.failures))


@settings(max_examples=80, deadline=None)
@given(histories(), st.sampled_from(METHODS), st.lists(failures(injected=True), max_size=3))
def test_a_method_that_did_not_finish_is_never_counted_as_its_success(runs, method, injected):
    """(b) A run in which a method was planned but did not finish — replanned away by an
    injected failure, or never reached — is no use of it: adding it changes no method statistic,
    and no method has more successes than runs in which it finished."""
    dropped = exp(99, [method, *METHODS], injected, "partial").model_copy(update={"finished_methods": []})
    before = {a.target: a for a in mine(runs, PRIOR, task_type="data_report") if a.kind == "method_probability"}
    after = {a.target: a for a in mine([*runs, dropped], PRIOR, task_type="data_report")
             if a.kind == "method_probability"}
    if len([r for r in runs if not r.input_failure]) >= 3:
        assert after == before
    for m, (won, _) in shown(runs).items():
        assert won <= sum(1 for r in runs if not r.input_failure and m in r.finished_methods)


@settings(max_examples=80, deadline=None)
@given(histories())
def test_counts_shown_equal_counts_recomputed_by_hand(runs):
    """(c) "succeeded in N of M runs that used it" is exactly what the records say."""
    if len([r for r in runs if not r.input_failure]) < 3:
        assert shown(runs) == {}
        return
    assert shown(runs) == {m: c for m, c in by_hand(runs).items() if m in PRIOR}


def test_the_stranger_s_dropped_runs_are_no_uses_and_the_bad_files_are_left_out(sqlite_url):
    """A2 as recorded: time_series_analysis replanned away by injected failures in 6 runs and
    stopped by an injected transient in 1 is used only in the runs where it finished; A1: three
    ``;`` files that failed aggregate are left out, so cross_section_analysis keeps its prior,
    and ``experience show`` says so."""
    from relaygraph.cli.main import app
    from relaygraph.coordination.experience import left_out
    from relaygraph.nodes import experience as store
    from typer.testing import CliRunner

    done = ["prepare_analyse_report", "validate_and_clean", "time_series_analysis"]
    runs = [exp(i, done).model_copy(update={"finished_methods": done}) for i in range(11)]
    for i in range(6):
        hit = FailureRecord(task="trends", method="time_series_analysis", failure_class="unknown", action="replan",
                            injected=True, excluded=["time_series_analysis"])
        runs.append(exp(11 + i, [*done, "prepare_analyse_report", "validate_and_clean", "cross_section_analysis"],
                        [hit], "partial").model_copy(update={"finished_methods": [
                            "prepare_analyse_report", "validate_and_clean", "cross_section_analysis"]}))
    stop = FailureRecord(task="trends", method="time_series_analysis", failure_class="transient", action="stop",
                         injected=True)
    runs.append(exp(17, done, [stop], "failed").model_copy(update={"finished_methods": ["validate_and_clean"]}))
    semi = FailureRecord(task="aggregate", method="cross_section_analysis", failure_class="unknown", action="replan",
                         excluded=["cross_section_analysis"], error=INPUT_ERRORS[0])
    for i in range(3):
        runs.append(exp(18 + i, ["prepare_analyse_report", "validate_and_clean", "cross_section_analysis"],
                        [semi], "failed").model_copy(update={"finished_methods": ["validate_and_clean"],
                                                             "input_failure": input_failure([semi])}))
    evidence = {a.target: a.evidence for a in mine(runs, PRIOR, task_type="data_report")
                if a.kind == "method_probability"}
    assert evidence["time_series_analysis"] == "succeeded in 11 of 11 runs that used it"
    assert evidence["cross_section_analysis"] == "succeeded in 6 of 6 runs that used it"
    assert left_out(runs) == {"input failures (the file, not a method)": 3}
    for run in runs:
        store.record(sqlite_url, run)
    out = CliRunner().invoke(app, ["experience", "show", "--checkpoint-db", sqlite_url]).output
    assert "3 runs left out: input failures (the file, not a method)" in out, out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["data_quality", "dependency", "resource", "schema_mapped"]), min_size=3, max_size=8))
def test_the_data_s_faults_never_count_against_the_method(classes):
    """A data-quality, dependency or resource failure the replan fixed, and a schema failure
    adapted by mapping a column, say nothing about the method: its probability stays the prior
    pulled up by the runs it finished (as if nothing had failed)."""
    runs = [exp(i, ["cross_section_analysis"], [FailureRecord(
        task="aggregate", method="cross_section_analysis", failure_class=cls.split("_mapped")[0],
        action="replan", excluded=[])]) for i, cls in enumerate(classes)]
    clean = [exp(i, ["cross_section_analysis"]) for i in range(len(classes))]
    probability = {a.target: a.value for a in mine(runs, PRIOR, task_type="data_report")
                   if a.kind == "method_probability"}
    assert probability == {a.target: a.value for a in mine(clean, PRIOR, task_type="data_report")
                           if a.kind == "method_probability"}
    assert probability["cross_section_analysis"] > PRIOR["cross_section_analysis"]


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 30), st.sampled_from(METHODS))
def test_one_failure_cannot_sink_a_method(n, method):
    """The Beta prior (strength 5) keeps one real failure in the one run that used a method from
    taking it below prior·5/6, however many other runs (of other methods) the store holds."""
    stop = FailureRecord(task=TASK_OF[method], method=method, failure_class="unknown", action="stop")
    other = next(m for m in METHODS if m != method)
    runs = [exp(0, [method], [stop], "failed")] + [exp(i, [other]) for i in range(1, n)]
    learned = {a.target: a.value for a in mine(runs, PRIOR, task_type="data_report")
               if a.kind == "method_probability"}
    assert learned[method] >= round(PRIOR[method] * 5 / 6, 4) - 1e-4


def test_blame_lands_on_the_method_that_was_dropped_for_its_own_failure():
    """The stranger's data-quality run: aggregate failed (data quality), cleaning fixed it, the run
    completed — cross_section_analysis was not at fault. A fallback that ruled the method out was."""
    from relaygraph.coordination.experience import blames_method, method_outcomes

    entry = {"task": "aggregate", "method": "cross_section_analysis", "failure_class": "data_quality",
             "action": "replan", "injected": False, "changes": {"exclude_methods": []}}
    assert not blames_method(FailureRecord.model_validate(entry))
    ruled_out = {**entry, "failure_class": "unknown", "changes": {"exclude_methods": ["cross_section_analysis"]}}
    assert blames_method(FailureRecord.model_validate(ruled_out))
    assert not blames_method(FailureRecord.model_validate({**ruled_out, "injected": True}))
    assert blames_method(FailureRecord.model_validate({**ruled_out, "injected": True}), simulated=True)
    mapped = {**entry, "task": "trends", "method": "time_series_analysis", "failure_class": "schema"}
    run = exp(0, ["time_series_analysis", "cross_section_analysis"],
              [FailureRecord.model_validate(entry), FailureRecord.model_validate(mapped)])
    assert method_outcomes(run) == {"time_series_analysis": True, "cross_section_analysis": True}


def test_a_plan_stopped_by_learned_probabilities_says_so_and_names_the_way_out(cast, sample_path):
    """Three real runs in which time_series_analysis was ruled out, and cross_section_analysis
    too: the next plan falls below 0.6 only because of them. The stop names the learned
    probabilities, the evidence, and the way out (learn=false, experience reset), which works."""
    from relaygraph.cli.main import app
    from relaygraph.config.settings import settings_from_config
    from relaygraph.graphs.planned import build_graph
    from relaygraph.nodes import experience as store
    from typer.testing import CliRunner

    url = settings_from_config({}).checkpoint_db
    for i in range(6):
        ruled_out = [FailureRecord(task=TASK_OF[m], method=m, failure_class="unknown", action="stop")
                     for m in ("time_series_analysis", "cross_section_analysis")]
        store.record(url, exp(i, ["time_series_analysis", "cross_section_analysis"], ruled_out, "failed"))
    # the stop comes before any agent runs: the strict cast has nothing scripted, so no call is allowed
    result = build_graph().compile().invoke({"task": "report"}, {"configurable": {"thread_id": "sunk"}})["result"]
    assert result["status"] == "failed" and result["reason"].startswith("planning stopped: plan confidence")
    assert "Learned from earlier runs (relaygraph experience show): time_series_analysis 0.9 -> " in result["reason"]
    assert "succeeded in 0 of 6 runs that used it" in result["reason"]
    assert "--param learn=false" in result["reason"] and "relaygraph experience reset" in result["reason"]

    reset = CliRunner().invoke(app, ["experience", "reset"])
    assert reset.exit_code == 0 and "Removed 7 experiences" in reset.output, reset.output
    assert store.stores(url) == {}


# --- timeouts scale with the data ------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(st.floats(0.01, 60), st.floats(1e-7, 1e-2), st.integers(1, 10_000_000), st.integers(1, 10_000_000),
       st.integers(0, 3))
def test_learned_timeouts_grow_with_rows_and_never_undercut_the_slowest_run(slowest, rate, a, b, stopped):
    from relaygraph.coordination.experience import MAX_TIMEOUT_S, MIN_TIMEOUT_S, TIMEOUT_FACTOR, timeout_for

    small, large = sorted((a, b))
    assert timeout_for(slowest, rate, small, stopped) <= timeout_for(slowest, rate, large, stopped)
    assert timeout_for(slowest, rate, large, stopped) >= min(MAX_TIMEOUT_S, max(MIN_TIMEOUT_S, TIMEOUT_FACTOR * slowest))
    assert timeout_for(slowest, rate, large, stopped) >= min(MAX_TIMEOUT_S, 4 * rate * large)


def test_a_timeout_learned_on_small_files_does_not_cut_a_large_one():
    """The stranger's big.csv: validate took ≤ 1.28 s on 3,000-row files, so it learned 2.56 s —
    and a 200,000-row file failed validate after three retries. Scaled by rows, the same store
    gives the large file 4 × 200,000 × (1.28 s / 3,000 rows) = 341 s; the same size gets the floor."""
    from relaygraph.coordination.experience import MIN_TIMEOUT_S

    runs = [exp(i, ["validate_and_clean"]).model_copy(update={"durations": {"validate": 1.28}, "row_count": 3000})
            for i in range(3)]
    small = {a.target: a.value for a in mine(runs, PRIOR, task_type="data_report", rows=3000) if a.kind == "timeout"}
    large = {a.target: a for a in mine(runs, PRIOR, task_type="data_report", rows=200_000) if a.kind == "timeout"}
    assert small["validate"] == MIN_TIMEOUT_S  # the same size: 5 × 1.28 s is below the floor
    assert large["validate"].value == pytest.approx(4 * 200_000 * 1.28 / 3000, rel=1e-3)
    assert "for 200,000 rows" in large["validate"].evidence


def test_a_timeout_on_a_large_input_is_scaled_down_not_stopped_after_its_retries():
    """Retrying with the same timeout cannot help a task that is too slow for the data's size:
    after the retries, a timeout on ≥ 50,000 rows is a resource failure (partitions, replan);
    on small data it still stops."""
    from relaygraph.coordination.htn import plan as make_plan
    from relaygraph.coordination.replanning import MAX_RETRIES, Failure, decide
    from relaygraph.coordination.world import GOAL

    world = {"row_count": 200_000, "is_clean": False, "has_time_column": True, "partitions": 1,
             "analysed": False, "validated": False}
    plan = make_plan(DATA_DOMAIN, GOAL, world)
    task = plan.tasks[0]
    cut = Failure(task=task.name, task_id=task.id, failure_class="transient", timeout_s=2.56,
                  error="TimeoutError: validator timed out after 2.563s (its timeout)")
    large = decide(cut, task, plan, world, [], MAX_RETRIES, rows=200_000)
    assert (large.action, large.failure_class, large.facts) == ("replan", "resource", {"partitions": 2})
    assert "200,000 rows" in large.policy
    assert decide(cut, task, plan, world, [], MAX_RETRIES - 1, rows=200_000).action == "retry"
    assert decide(cut, task, plan, world, [], MAX_RETRIES, rows=3000).action == "stop"
    real_model_error = cut.model_copy(update={"timeout_s": None})  # the server, not our cut
    assert decide(real_model_error, task, plan, world, [], MAX_RETRIES, rows=200_000).action == "stop"


def test_a_dependency_failure_with_no_producer_says_why_its_policy_did_not_apply():
    """The stranger's f_dependency run: aggregate on already-clean data has no producer to
    re-run, so the policy falls back — and the history says why, not just "fallback"."""
    from relaygraph.coordination.htn import plan as make_plan
    from relaygraph.coordination.replanning import Failure, decide
    from relaygraph.coordination.world import GOAL

    world = {"row_count": 3000, "is_clean": True, "has_time_column": True, "partitions": 1,
             "analysed": False, "validated": True}
    plan = make_plan(DATA_DOMAIN, GOAL, world)
    task = next(t for t in plan.tasks if t.name == "aggregate")
    failure = Failure(task="aggregate", task_id=task.id, failure_class="dependency",
                      error="FileNotFoundError: missing upstream artifact (injected)", injected=True)
    decision = decide(failure, task, plan, world, [], 0)
    assert decision.policy.startswith("dependency policy (re-run the producer) not applicable: no completed "
                                      "task produces what 'aggregate' needs (")
    assert "nothing upstream can be re-run; fallback: " in decision.policy


def test_plan_show_all_is_one_valid_mermaid_block_per_plan_with_the_failure_and_partitions():
    """``plan show --all``: each plan under its own heading in its own ```mermaid block (one
    ``flowchart TD`` per block), the task that ended a replaced plan marked failed, and the
    scaled-down plan's partitioned tasks saying so."""
    from relaygraph.cli.plan import every_plan
    from relaygraph.coordination.htn import plan as make_plan
    from relaygraph.coordination.world import GOAL

    world = {"row_count": 3000, "is_clean": True, "has_time_column": True, "partitions": 1, "analysed": False,
             "validated": True}
    first = make_plan(DATA_DOMAIN, GOAL, world)
    second = make_plan(DATA_DOMAIN, GOAL, {**world, "partitions": 2})
    replans = [{"task": "aggregate", "failure_class": "resource", "action": "replan", "accepted": True,
                "policy": "scale down: 1 → 2 partitions, replan", "changes": {"facts": {"partitions": 2}}}]
    text = every_plan([first.model_dump(mode="json"), second.model_dump(mode="json")], replans)
    blocks = text.split("```mermaid")[1:]
    assert len(blocks) == 2 and all(b.count("flowchart TD") == 1 for b in blocks)
    assert "## Plan 1 of 2 — replaced: aggregate failed (resource: scale down: 1 → 2 partitions, replan)" in text
    assert "## Plan 2 of 2 — scaled down to 2 partitions" in text
    assert "class n" in blocks[0] and "failed" in blocks[0] and "classDef failed" not in blocks[1]
    assert "aggregate ×2 partitions<br/>" in blocks[1] and "×2" not in blocks[0]


# --- what is learned is keyed to the data it was learned on ----------------------------------------

KINDS = {"time": {"has_time_column": True, "row_count": 3_000},
         "no_time": {"has_time_column": False, "row_count": 3_000},
         "time_large": {"has_time_column": True, "row_count": 200_000},
         "no_time_large": {"has_time_column": False, "row_count": 200_000}}


def on(facts: dict, run: Experience) -> Experience:
    return run.model_copy(update={"facts": dict(facts)})


def _probabilities(runs, facts=None) -> dict[str, float]:
    return {a.target: a.value for a in mine(runs, PRIOR, task_type="data_report", facts=facts)
            if a.kind == "method_probability"}


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(KINDS)), st.sampled_from(sorted(KINDS)), st.sampled_from(METHODS),
       st.integers(3, 8), st.integers(0, 5))
def test_failures_on_one_kind_of_data_never_lower_a_method_on_another(a, b, method, failed, other_runs):
    """A method that failed on data of kind A (say, without a time column) keeps, on data of a kind
    B that differs in has_time_column, exactly what B's own runs taught — as if the failures on A
    had never been recorded; on the same kind of data they lower it."""
    stop = FailureRecord(task=TASK_OF[method], method=method, failure_class="unknown", action="stop")
    on_b = [on(KINDS[b], exp(100 + i, [method])) for i in range(other_runs)]
    on_a = [on(KINDS[a], exp(i, [method], [stop], "failed")) for i in range(failed)]
    filler = [on(KINDS[b], exp(200 + i, ["already_clean"])) for i in range(3)]  # enough runs to mine at all
    with_failures = _probabilities(on_a + on_b + filler, KINDS[b])
    if KINDS[a]["has_time_column"] != KINDS[b]["has_time_column"]:
        assert with_failures.get(method) == _probabilities(on_b + filler, KINDS[b]).get(method)
        assert with_failures.get(method, PRIOR[method]) >= PRIOR[method]
    elif a == b:
        assert with_failures[method] < _probabilities(on_b + filler, KINDS[b]).get(method, PRIOR[method])


def test_method_statistics_fall_back_from_data_like_this_to_the_time_column_then_task_wide():
    """The levels by hand: runs on data like this win; a method never used on such data uses
    the runs on data with the same has_time_column of any size; then runs recorded without
    facts; and mining without facts is task-type-wide (every run, whatever its data)."""
    stop = FailureRecord(task="aggregate", method="cross_section_analysis", failure_class="unknown", action="stop")
    small_ok = [on(KINDS["no_time"], exp(i, ["cross_section_analysis"])) for i in range(2)]
    large_bad = [on(KINDS["no_time_large"], exp(10 + i, ["cross_section_analysis"], [stop], "failed"))
                 for i in range(3)]
    unknown_bad = [exp(20 + i, ["validate_and_clean"], [FailureRecord(
        task="clean", method="validate_and_clean", failure_class="unknown", action="stop")], "failed")
        for i in range(3)]
    runs = small_ok + large_bad + unknown_bad
    learned = {a.target: a for a in mine(runs, PRIOR, task_type="data_report", facts=KINDS["no_time"])
               if a.kind == "method_probability"}
    cs = learned["cross_section_analysis"]
    assert cs.value == pytest.approx(round((0.8 * 5 + 2) / 7, 4))  # only the two small runs
    assert cs.data == "has_time_column=false, rows < 50,000"
    assert cs.evidence == "succeeded in 2 of 2 runs that used it on data like this (has_time_column=false, rows < 50,000)"
    medium = {"has_time_column": False, "row_count": None}  # rows unknown: no run on data like it
    assert _probabilities(runs, medium)["cross_section_analysis"] == pytest.approx(round((0.8 * 5 + 2) / 10, 4))
    assert learned["validate_and_clean"].data == "recorded without data facts"
    assert "time_series_analysis" not in learned  # never used anywhere: the prior
    assert _probabilities(runs, KINDS["time"]) == {"validate_and_clean": learned["validate_and_clean"].value}
    wide = {a.target: a for a in mine(runs, PRIOR, task_type="data_report") if a.kind == "method_probability"}
    assert wide["cross_section_analysis"].value == pytest.approx(round((0.8 * 5 + 2) / 10, 4))
    assert wide["cross_section_analysis"].data is None


def test_experience_show_prints_the_data_each_probability_was_learned_on(sqlite_url):
    from relaygraph.cli.main import app
    from relaygraph.nodes import experience as store
    from typer.testing import CliRunner

    stop = FailureRecord(task="aggregate", method="cross_section_analysis", failure_class="unknown", action="stop")
    for i in range(3):
        store.record(sqlite_url, on(KINDS["no_time"], exp(i, ["cross_section_analysis"], [stop], "failed")))
    store.record(sqlite_url, on(KINDS["time"], exp(9, ["cross_section_analysis"])))
    shown = CliRunner().invoke(app, ["experience", "show", "--checkpoint-db", sqlite_url])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert "method probabilities, keyed by the data" in shown.output
    no_time = lines.index("  data has_time_column=false, rows < 50,000 (3 runs):")
    time = lines.index("  data has_time_column=true, rows < 50,000 (1 runs):")
    assert "cross_section_analysis: 0.8 -> 0.5 (succeeded in 0 of 3 runs that used it on data like this" \
        in lines[no_time + 1]
    assert "cross_section_analysis: 0.8 -> 0.8333 (succeeded in 1 of 1 runs" in lines[time + 1]
    wide = lines.index("  task-type-wide (every run, whatever its data; a plan uses these only when its data's "
                       "facts are unknown):")
    assert "cross_section_analysis: 0.8 -> 0.5556 (succeeded in 1 of 4 runs that used it)" in lines[wide + 1]


def test_a_section_the_learning_left_out_makes_the_run_partial_and_says_so_on_the_console(cast, sample_path):
    """Stranger14 B4: three real runs that sank time_series_analysis; the next plain run plans
    without trends. Its status is partial (a requested section is missing by the planner's
    choice), the reason and a console line name the learned probability and learn=false."""
    from relaygraph.cli.main import app
    from relaygraph.config.settings import settings_from_config
    from relaygraph.nodes import experience as store
    from typer.testing import CliRunner

    url = settings_from_config({}).checkpoint_db
    sunk = FailureRecord(task="trends", method="time_series_analysis", failure_class="unknown", action="stop")
    for i in range(3):
        store.record(url, exp(i, ["time_series_analysis"], [sunk], "failed").model_copy(update={
            "finished_methods": [], "facts": {"has_time_column": True, "row_count": 3048}}))
    planned_runs(cast, "cross_section")
    out = CliRunner().invoke(app, ["run", "planned", "--thread-id", "b4"])
    assert out.exit_code == 0, out.output
    from relaygraph.config.checkpointing import open_checkpointer
    from relaygraph.graphs.planned import build_graph
    with open_checkpointer() as saver:
        result = build_graph().compile(checkpointer=saver).get_state({"configurable": {"thread_id": "b4"}}).values[
            "result"]
    why = "left out: trend (learned: time_series_analysis 0.9 -> 0.5625; --param learn=false to plan with priors)"
    assert result["status"] == "partial" and result["reason"] == why
    assert {"node": "plan", "reason": why, "outcome": "partial"}.items() <= result["errors"][-1].items()
    console = " ".join(out.output.split())
    # said once, when the plan is made: before the first task's line, not after the report
    assert console.count(f"! plan: {why}") == 1 and "! finalize (partial)" in console, out.output
    assert console.index(f"! plan: {why}") < console.index("✓ clean"), out.output
    (recorded,) = [e for e in store.load(url, "data_report") if e.thread_id == "b4"]
    assert recorded.finished_methods == result["plan"]["methods"]  # every method of the one plan finished
    assert "time_series_analysis" not in recorded.methods and recorded.input_failure is None


@pytest.mark.parametrize("where", ["data", "dataset"])
def test_a_refused_input_never_becomes_an_experience(cast, where):
    """Stranger14 A1: a path outside the data directory is refused by the graph's first node
    before observe or plan runs (no agent is scripted: none may run), and nothing is recorded."""
    from relaygraph.config.checkpointing import open_checkpointer
    from relaygraph.config.settings import settings_from_config
    from relaygraph.graphs.planned import build_graph
    from relaygraph.nodes import experience as store

    inputs = {"task": "report", **({"data": "../../etc/passwd"} if where == "data" else {})}
    configurable = {"thread_id": f"refused-{where}", **({"dataset": "../x.csv"} if where == "dataset" else {})}
    with open_checkpointer() as saver:
        graph = build_graph().compile(checkpointer=saver)
        with pytest.raises(ValueError, match="outside the data directory"):
            graph.invoke(inputs, {"configurable": configurable})
        assert not graph.get_state({"configurable": {"thread_id": f"refused-{where}"}}).values.get("world")
    assert store.stores(settings_from_config({}).checkpoint_db) == {}


def test_a_run_whose_requested_sections_were_all_planned_away_fails_naming_what_was_asked_and_why(
        cast, sample_path):
    """Stranger14b N4: the learning left out trend, and trend was the only section asked for.
    The plan is refused before any agent works (the strict cast has no scripts), the run is
    failed with a non-zero exit, and the reason names the request and the learned cause."""
    from relaygraph.cli.main import app
    from relaygraph.config.checkpointing import open_checkpointer
    from relaygraph.config.settings import settings_from_config
    from relaygraph.graphs.planned import build_graph
    from relaygraph.nodes import experience as store
    from typer.testing import CliRunner

    url = settings_from_config({}).checkpoint_db
    sunk = FailureRecord(task="trends", method="time_series_analysis", failure_class="unknown", action="stop")
    for i in range(3):
        store.record(url, exp(i, ["time_series_analysis"], [sunk], "failed").model_copy(update={
            "finished_methods": [], "facts": {"has_time_column": True, "row_count": 3048}}))
    out = CliRunner().invoke(app, ["run", "planned", "--model", "cast", "--thread-id", "n4",
                                   "--param", "sections=trend"])
    assert out.exit_code == 1, out.output
    with open_checkpointer() as saver:
        result = build_graph().compile(checkpointer=saver).get_state({"configurable": {"thread_id": "n4"}}).values[
            "result"]
    assert result["status"] == "failed"
    assert result["reason"].startswith("planning stopped: none of the requested sections (--param sections=trend) "
                                       "can be delivered: trend: left out by what earlier runs taught the planner: "
                                       "time_series_analysis 0.9 -> 0.5625"), result["reason"]
    assert "--param learn=false" in result["reason"]
    assert "report" not in (result.get("artifacts") or {})


def test_experience_show_says_one_run_not_one_runs(sqlite_url):
    from relaygraph.cli.main import app
    from relaygraph.nodes import experience as store
    from typer.testing import CliRunner

    semi = FailureRecord(task="aggregate", method="cross_section_analysis", failure_class="unknown", action="replan",
                         excluded=["cross_section_analysis"], error=INPUT_ERRORS[0])
    store.record(sqlite_url, exp(0, ["cross_section_analysis"], [semi], "failed").model_copy(
        update={"finished_methods": [], "input_failure": input_failure([semi])}))
    out = CliRunner().invoke(app, ["experience", "show", "--checkpoint-db", sqlite_url]).output
    assert "  1 run left out: input failures (the file, not a method)" in out, out
