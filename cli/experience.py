"""``relaygraph experience``: what planned runs have learned, and why.

    relaygraph experience show                 every store: size and ranked adaptations
    relaygraph experience show --store NAME    one store (a task type, e.g. data_report)
    relaygraph experience reset [--store NAME] forget what was learned (the runs' checkpoints stay)

Adaptations come from :func:`relaygraph.coordination.experience.mine` over the experience
store in the checkpoint database; they are what the next ``planned`` run plans with.
"""

from __future__ import annotations

import sys

import typer
from relaygraph.config.settings import get_settings
from relaygraph.coordination import experience
from relaygraph.coordination.replanning import BACKOFF_S
from relaygraph.coordination.world import DATA_DOMAIN
from relaygraph.nodes import experience as experience_store

experience_app = typer.Typer(add_completion=False, no_args_is_help=True,
                             help="Show what planned runs learned from earlier runs (experience store).")


def _stores(checkpoint_db: str | None, store: str | None) -> tuple[str, dict[str, int]]:
    """The database URL and its stores' sizes; an unknown ``--store`` is one line and exit 2."""
    url = checkpoint_db or get_settings().checkpoint_db
    sizes = experience_store.stores(url)
    if store is not None and store not in sizes:
        print(f"No experience store {store!r}; stores: {', '.join(sorted(sizes)) or 'none yet'}.", file=sys.stderr)
        raise typer.Exit(2)
    return url, sizes


@experience_app.command("show")
def show(
    store: str | None = typer.Option(None, "--store", help="Only this store (task type)."),
    checkpoint_db: str | None = typer.Option(None, "--checkpoint-db", help="Checkpoint database URL."),
) -> None:
    """List each store's size and its adaptations, most impact first, with the evidence."""
    url, sizes = _stores(checkpoint_db, store)
    if not sizes:
        print("No experiences recorded yet: finished `relaygraph run planned` runs are recorded here.")
        return
    prior = {m.name: m.success_probability for m in DATA_DOMAIN.methods}
    for name in sorted(sizes) if store is None else [store]:
        found = experience_store.load(url, name)
        outcomes = {o: sum(1 for e in found if e.outcome == o) for o in sorted({e.outcome for e in found})}
        print(f"store {name}: {len(found)} experiences ({', '.join(f'{n} {o}' for o, n in outcomes.items())})")
        for why, n in experience.left_out(found).items():
            print(f"  {n} {'run' if n == 1 else 'runs'} left out: {why}")
        learned = experience.mine(found, prior, task_type=name, backoff_s=BACKOFF_S)
        if not learned:
            print(f"  nothing learned yet: {experience.MIN_EXPERIENCES} experiences of a task type that are "
                  "evidence are needed")
            continue
        print("  a run uses a method when the method's tasks all finished in it (succeeded) or a failure of its "
              "own hit it (failed); replanned away without its fault, or never reached, is no use")
        for a in learned:
            if a.kind != "method_probability":
                _line(a)
        print(f"  method probabilities, keyed by the data (has_time_column; rows below or from "
              f"{experience.LARGE_ROWS:,}): a plan uses those learned on data like its own; for a method never "
              "used on such data, those of data with the same has_time_column of any size, then of runs "
              "recorded without data facts, else the domain's prior")
        kinds = experience.data_kinds(found)
        for kind in kinds:
            runs = sum(1 for e in found if experience.DataKind.of(e.facts) == kind)
            print(f"  data {kind.label()} ({runs} runs):")
            for a in experience.mine(found, prior, task_type=name, backoff_s=BACKOFF_S, facts=kind.facts()):
                if a.kind == "method_probability":
                    _line(a, "    ")
        print("  task-type-wide (every run, whatever its data; a plan uses these only when its data's facts "
              "are unknown):")
        for a in learned:
            if a.kind == "method_probability":
                _line(a, "    ")


def _line(a: experience.Adaptation, indent: str = "  ") -> None:
    change = f"{a.previous:g} -> {a.value:g}" if a.previous is not None else f"{a.value:g}"
    print(f"{indent}[{a.impact:.3f}] {a.kind} {a.target}: {change} ({a.evidence})")


@experience_app.command("reset")
def reset(
    store: str | None = typer.Option(None, "--store", help="Only this store (task type); default all."),
    checkpoint_db: str | None = typer.Option(None, "--checkpoint-db", help="Checkpoint database URL."),
) -> None:
    """Forget what earlier runs taught (the way out when learned probabilities stop every plan)."""
    url, _ = _stores(checkpoint_db, store)
    removed = experience_store.clear(url, store)
    print(f"Removed {removed} experiences ({store or 'all stores'}); the next planned run plans from the "
          "domain's priors.")
