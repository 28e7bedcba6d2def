"""The models a server answers with: loaded once, shared by every request, swapped when a newer one lands.

Requests read `store.current`, an immutable snapshot, and never touch the warehouse. A watcher
thread runs one cheap check every `reload_every` seconds (newest model id, newest evaluation,
the vocabulary's fingerprint); only when that changes does it read the records and load what
is new, then swaps the snapshot in one assignment.
"""
from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.core.kinds import KINDS, ZERO_SHOT, vocabulary_fingerprint
from hashtag_workbench.core.predictor import LoadedModel, load_model
from hashtag_workbench.infra.ticker import Ticker
from hashtag_workbench.service.predictions import stored_zero_shot
from hashtag_workbench.warehouse import models as wh
from hashtag_workbench.warehouse.dashboard_queries import model_comparison
from hashtag_workbench.warehouse.words import hashtags_for, list_words

CACHE_SIZE = 6  # loaded models kept: the defaults plus a few asked for by id


def log(message: str) -> None:
    print(f"[serve] {message}", file=sys.stderr, flush=True)


class UnknownModel(LookupError):
    """A request named a model id that is not in the warehouse."""


@dataclass(frozen=True)
class Snapshot:
    key: tuple                       # what the cheap check compares
    supervised: LoadedModel | None
    zero_shot: LoadedModel | None
    hashtags: dict[str, list[str]]   # word -> tags: the map predictions sample from
    words: list[str]                 # the active vocabulary
    records: dict[int, dict]         # every stored model, by id
    scores: dict[int, dict]          # model id -> its latest evaluation (val scope, else all)
    loaded_at: float = field(default_factory=time.time)

    def defaults(self) -> dict[str, LoadedModel | None]:
        return {"supervised": self.supervised, "zero_shot": self.zero_shot}


def latest_scores(home) -> dict[int, dict]:
    """model id -> {scope, top1, top5, evaluation_run_id}: the scope best_models ranks by (val, else all)."""
    out: dict[int, dict] = {}
    for row in model_comparison(home):
        if row["scope"] in ("val", "all") and (row["model_id"] not in out or row["scope"] == "val"):
            out[row["model_id"]] = {"scope": row["scope"], "top1": row["top1"], "top5": row["top5"],
                                    "evaluation_run_id": row["eval_run_id"]}
    return out


class ModelStore:
    def __init__(self, settings):
        self.settings = settings
        self.home = settings.home
        self.reloads = 0
        self._cache: OrderedDict[int, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._ticker = Ticker("model-watcher", settings.reload_every, self._check_quietly)
        self.current = self._snapshot(*self._read())

    def _read(self) -> tuple[tuple, list[str], dict]:
        words = [w["word"] for w in list_words(self.home, active_only=True)]
        tags = hashtags_for(self.home)
        return (*wh.model_generation(self.home), vocabulary_fingerprint(words, tags)), words, tags

    def _snapshot(self, key: tuple, words: list[str], tags: dict) -> Snapshot:
        zs = stored_zero_shot(self.home)
        if zs is None and self.settings.refresh_zero_shot is not None:
            zs = self.settings.refresh_zero_shot(self.home)  # the vocabulary changed: build it, as predict does
        previous = getattr(self, "current", None)
        sup = wh.best_models(self.home)["supervised"]
        return Snapshot(key=key, supervised=self.load(sup) if sup else None,
                        zero_shot=self.load(zs) if zs else (previous.zero_shot if previous else None),
                        hashtags=tags, words=words, records={r["model_id"]: r for r in wh.models(self.home)},
                        scores=latest_scores(self.home))

    def load(self, record: dict) -> LoadedModel:
        """The loaded model of a record, from the cache when it was loaded before."""
        mid = record["model_id"]
        with self._lock:
            if mid in self._cache:
                self._cache.move_to_end(mid)
                return self._cache[mid]
        model = load_model(record)
        with self._lock:
            self._cache[mid] = model
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)  # snapshots still hold their own models
        return model

    def pick(self, snap: Snapshot, model_ids: list[int]) -> dict[str, LoadedModel | None]:
        """The snapshot's default models with each named id in place of its role's default."""
        chosen = snap.defaults()
        named: set[str] = set()
        for mid in model_ids:
            rec = snap.records.get(mid)
            if rec is None:
                raise UnknownModel(f"no model with id {mid} (GET /v1/models lists them)")
            role = "zero_shot" if KINDS[rec["kind"]].role == ZERO_SHOT else "supervised"
            if role in named:
                raise InputError(f"model names two {role.replace('_', '-')} models; give at most one per role")
            named.add(role)
            chosen[role] = self.load(rec)
        return chosen

    def check(self) -> bool:
        """One cheap look at the warehouse; a new snapshot only when something changed."""
        key, words, tags = self._read()
        if key == self.current.key:
            return False
        snap = self._snapshot(key, words, tags)
        self.current = snap
        self.reloads += 1
        log("models now: " + ", ".join(f"{role} {m.model_id if m else None}" for role, m in snap.defaults().items()))
        return True

    def _check_quietly(self) -> None:
        try:
            self.check()
        except Exception as exc:  # a busy or broken warehouse: keep serving what is loaded
            log(f"model check failed ({type(exc).__name__}: {str(exc)[:200]}); still serving the loaded models")

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> None:
        self._ticker.stop(timeout=30)
