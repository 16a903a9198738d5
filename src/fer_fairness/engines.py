"""Where batch-classifier inference runs: in this process (``local``), or sharded over a Ray cluster.

``--fairness-engine ray`` (a local Ray instance), ``ray:ADDRESS`` (an existing cluster, e.g.
``ray:auto`` or ``ray:ray://head:10001``), with ``?actors=N`` (actor pool size; default: what the
cluster's CPUs, or GPUs with ``gpus``, allow) and ``?gpus=G`` (GPUs per actor, default 0).

Only inference moves: the driver keeps the content-addressed cache, asks the cluster for the images
the cache lacks, stores each batch as it comes back (so a run killed half-way resumes with only the
missing images), and builds the same outcome table as a local run. The images go to the actors as
paths, so every node must read them at the same path (a shared filesystem). Each actor loads the
model once: a built-in adapter is rebuilt from its spec on the actor; a model object from a
conftest is shipped to it (it must pickle). Ray Data retries a batch whose actor died; answers are
keyed by position, so an image is never lost or counted twice. Each batch also says which actor
(and which process of it) answered, so progress shows how many actors work and how many times one
died and was restarted. API models stay on the driver's rate-limited client (the provider, not the
cluster, is their limit), and so does hog-probe (cheaper than a cluster's start).

What travels to an actor is a *batch runner*: ``name``, ``spec_text`` (a built-in spec an actor
rebuilds it from, or None to pickle the object itself) and ``_call(paths, *args)`` returning one
JSON-ready answer per image. BatchModel is one (labels or scores); clip's embedder (embedding rows,
the probe's fit stays on the driver) and paligemma (generated text) are the others.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_fairness.errors import ConfigError, ModelError
from fer_fairness.progress import note
from fer_fairness.specs import Registry, number_option

ENGINES = Registry(
    what="engine",
    entries={"local": "fer_fairness.engines:local", "ray": "fer_fairness.engines:RayEngine"},
    usage={"local": "local", "ray": "ray[:ADDRESS][?actors=N&gpus=G]"},
    extras={"ray": "ray"},
)


def local(spec: Any) -> None:
    """The default: inference in this process (``None`` in PredictContext.engine)."""
    if spec.target or spec.options:
        raise ConfigError(f"engine '{spec.text}': local takes no address or options")
    return None


def parse_engine(text: str) -> Any:
    """An engine from ``--fairness-engine``: None for local, else an engine object; mistakes are ConfigErrors."""
    return ENGINES.build(ENGINES.parse(text))


@dataclass(frozen=True)
class _Rebuild:
    """How an actor gets its model: rebuilt from a built-in spec, or the object itself (pickled)."""

    spec_text: str | None
    model: Any
    args: tuple = ()  # further arguments of every _call (paligemma's prompt)


class RayEngine:
    """Batch-classifier inference as Ray Data ``map_batches`` over an actor pool (one model load per actor)."""

    def __init__(self, spec: Any):
        import ray  # the 'ray' extra: without it Registry.build names the extra

        unknown = sorted(set(spec.options) - {"actors", "gpus"})
        if unknown:
            raise ConfigError(f"engine '{spec.text}': unknown option(s) {', '.join(unknown)} (allowed: actors, gpus)")
        self.address = spec.target or None
        self.actors = number_option(spec, "actors", minimum=1, what="engine")
        self.gpus = number_option(spec, "gpus", 0.0, minimum=0, kind=float, what="engine")
        self._ray = ray
        self.text = spec.text

    def describe(self) -> dict[str, str]:
        return {"engine": self.text, "actors": str(self.actors or "auto"), "gpus_per_actor": str(self.gpus)}

    def _start(self) -> None:
        import ray.data

        # Ray Data's own progress bars and execution logs would bury the run's output; ours are enough.
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        if ray.is_initialized():
            return
        try:
            if self.address:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            else:
                # A local instance's workers import what this process can (a conftest's model function
                # is pickled by reference to its module); a cluster ships code with its runtime_env.
                env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
                ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR", runtime_env=env)
        except Exception as error:  # a wrong address, a cluster down: one line
            why = f"{type(error).__name__}: {error}"
            raise ModelError(f"engine '{self.text}': cannot start or reach Ray ({why})") from None

    def _pool_size(self) -> int:
        if self.actors:
            return self.actors
        resources = self._ray.cluster_resources()
        if self.gpus:
            return max(1, int(resources.get("GPU", 0) // self.gpus))
        return max(1, int(resources.get("CPU", 1)))

    def batches(
        self, model: Any, paths: Sequence[Path], *, batch_size: int, args: tuple = (), progress: Any = None
    ) -> Iterator[tuple[list[int], list[Any]]]:
        """Each completed batch as (positions in ``paths``, answers), in completion order.

        ``progress`` (a progress.bar) is told the actors seen and their restarts as batches arrive;
        the caller still counts the images.
        """
        import ray.data

        self._start()
        spec_text = getattr(model, "spec_text", None)
        recipe = _Rebuild(spec_text, None if spec_text is not None else model, tuple(args))
        actors = Actors()
        rows = [{"position": i, "path": os.fspath(p)} for i, p in enumerate(paths)]
        dataset = ray.data.from_items(rows)
        mapped = dataset.map_batches(
            _Worker,
            fn_constructor_args=(recipe,),
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self._pool_size()),
            num_gpus=self.gpus or None,
        )
        try:
            for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
                if actors.saw(batch["actor"]) and progress is not None:
                    note(progress, actors.summary(), now=bool(actors.restarts()))
                yield [int(i) for i in batch["position"]], [_decode(a) for a in batch["answer"]]
        except Exception as error:  # a worker's ModelError or the user's code failing, as one line
            cause = _root(error)
            raise ModelError(f"model '{model.name}' on engine '{self.text}': {cause}") from None


class Actors:
    """Which actors answered, and how often each was restarted: a restarted Ray actor keeps its id
    but runs in a new process, so a second process id under one actor id is one failure."""

    def __init__(self) -> None:
        self.processes: dict[str, set[str]] = {}

    def saw(self, tags: Sequence[str]) -> bool:
        """Record a batch's ``actor/pid`` tags; True when that is news (a new actor or a restart)."""
        news = False
        for tag in {str(t) for t in tags}:
            actor, _, pid = tag.rpartition("/")
            known = self.processes.setdefault(actor, set())
            news |= pid not in known
            known.add(pid)
        return news

    def restarts(self) -> dict[str, int]:
        return {actor: len(pids) - 1 for actor, pids in self.processes.items() if len(pids) > 1}

    def summary(self) -> str:
        restarts = self.restarts()
        text = f"{len(self.processes)} actor(s)"
        if restarts:
            each = ", ".join(f"{actor[:8]}: {n}" for actor, n in sorted(restarts.items()))
            text += f", {sum(restarts.values())} died and restarted ({each}); their batches retried"
        return text


class _Worker:
    """A Ray actor: builds (or unpickles) the model once, then answers batches of image paths."""

    def __init__(self, recipe: _Rebuild):
        import ray

        if recipe.spec_text is not None:
            from fer_fairness.models import MODELS

            built = MODELS.build(MODELS.parse(recipe.spec_text))
            # a spec builds a model; the runner may be a part of it (clip's embedder)
            self.model = getattr(built, "batch_runner", lambda: built)()
        else:
            self.model = recipe.model
        self.args = recipe.args
        self.tag = f"{ray.get_runtime_context().get_actor_id()}/{os.getpid()}"

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import json

        import numpy as np

        answers = self.model._call([Path(p) for p in batch["path"]], *self.args)
        return {
            "position": batch["position"],
            "answer": np.array([json.dumps(a) for a in answers], dtype=object),
            "actor": np.array([self.tag] * len(answers), dtype=object),
        }


def _decode(text: Any) -> Any:
    import json

    return json.loads(str(text))


def _root(error: BaseException) -> str:
    """The worker's own message inside Ray's wrapping: the ModelError a batch raised (it names the
    model and the user's exception), else the last line Ray printed of the remote traceback."""
    text = str(error)
    found = re.findall(r"fer_fairness\.errors\.\w+Error: (.+)", text)
    if found:
        return found[-1].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:400] if lines else type(error).__name__
