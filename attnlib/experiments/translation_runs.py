"""Chapter 11's training runs: one translator trained from its seed, and many such runs, two at a time.

A run is fixed by a :class:`Run` (which model, its width, the learning rate, the seed, the budget). It
trains with the book's one loop (``attnlib.train``: AdamW without weight decay, batches drawn from a
generator seeded with the run's seed) on the same training sentences for every run, and records, every
``every`` steps, its exact match on a fixed sample of validation sentences per length bucket and (for the
model with attention) each cross-attention head's alignment agreement on them. Runs are independent, so
:func:`train_runs` trains them in worker processes of one thread each: a run's result does not depend on
which process trains it, nor on what else runs.
"""

from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache

import torch

from ..training import train
from . import translation_task as tt
from .translation_eval import accuracy, alignment_agreement, greedy_decode
from .translation_model import Translator, loss, translator

N_TRAIN = 10_000  # training sentences, drawn once (tt.train_set(N_TRAIN, seed=0)) and shared by every run
N_WATCH = 20  # validation sentences per bucket that each run scores while it trains


@dataclass(frozen=True)
class Run:
    memory: str  # "attention" or "summary"
    d_model: int
    lr: float
    seed: int  # the initial weights and the batches
    steps: int
    batch: int = 32
    every: int = 100  # steps between two records of the validation scores


@lru_cache(maxsize=1)
def _data():
    return tt.train_set(N_TRAIN, seed=0), tt.validation_set(N_WATCH)


def build(run: Run) -> Translator:
    """The run's model with its initial weights (seeded by ``run.seed``), float32."""
    torch.manual_seed(run.seed)
    return translator(run.d_model, run.memory)


def train_run(run: Run) -> dict:
    """Train one run -> {"run", "state" (the trained weights), "losses" (every step), "steps" (when the
    records were taken), "watch_exact" (records, buckets) and, for attention, "watch_agreement"
    (records, n_layers, n_heads)}."""
    (train_data, (src, tgt, align, lengths)) = _data()
    bucket = torch.tensor([tt.bucket_of(n) for n in lengths.tolist()])  # (n_watch,)
    model, record = build(run), {"run": asdict(run), "steps": [], "watch_exact": [], "watch_agreement": []}

    def watch(step, _losses):
        exact, _ = accuracy(greedy_decode(model, src, tt.MAX_TGT), tgt)  # (n_watch,)
        record["steps"].append(step)
        record["watch_exact"].append(torch.stack([exact[bucket == b].double().mean() for b in range(len(tt.BUCKETS))]))
        if run.memory == "attention":
            record["watch_agreement"].append(alignment_agreement(model, src, tgt, align)[0])
        model.train()

    losses = train(model, tt.batches(train_data, run.batch), loss, steps=run.steps, lr=run.lr, seed=run.seed,
                   every=run.every, callback=watch)
    record["watch_exact"] = torch.stack(record["watch_exact"])  # (records, buckets)
    if record["watch_agreement"]:
        record["watch_agreement"] = torch.stack(record["watch_agreement"])  # (records, n_layers, n_heads)
    return {**record, "state": model.state_dict(), "losses": losses}


def train_runs(runs: list[Run], processes: int = 2) -> list[dict]:
    """:func:`train_run` for every run, ``processes`` at a time, each in a worker process of one
    thread (so a run's result depends neither on which worker trains it nor on the thread count);
    results in order."""
    from ..processes import new_processes, one_thread

    with ProcessPoolExecutor(max_workers=processes, mp_context=new_processes(),
                             initializer=one_thread) as pool:
        return list(pool.map(train_run, runs))


def load(result: dict) -> Translator:
    """The trained model of a result of :func:`train_run`."""
    model = build(Run(**result["run"]))
    model.load_state_dict(result["state"])
    return model.eval()
