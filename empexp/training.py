"""Loop pieces shared by the training scripts: atomic checkpoints, batches that resume after a kill, and
publishing the result."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from argparse import Namespace
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

STATE_FILE = "trainer_state.json"


class Checkpointer:
    """Saves and restores the full training state (model, optimiser, scheduler, RNG) under ``directory``.

    Each checkpoint is written to ``step-N.tmp`` and renamed to ``step-N`` only when complete, so a
    kill at any moment leaves the previous checkpoint intact; older checkpoints are then removed.
    """

    def __init__(self, accelerator: Accelerator, directory: str | Path):
        self.accelerator = accelerator
        self.directory = Path(directory)

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or ``None``."""
        done = [p for p in self.directory.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp")]
        return max(done, key=lambda p: int(p.name.removeprefix("step-")), default=None)

    def restore(self) -> dict[str, Any] | None:
        """Load the newest checkpoint into the prepared objects; returns its saved state, or ``None``."""
        latest = self.latest()
        if latest is None:
            return None
        self.accelerator.load_state(str(latest))
        return json.loads((latest / STATE_FILE).read_text())

    def save(self, step: int, state: dict[str, Any]) -> Path:
        final = self.directory / f"step-{step}"
        tmp = final.with_name(final.name + ".tmp")
        if self.accelerator.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(tmp))
        if self.accelerator.is_main_process:
            (tmp / STATE_FILE).write_text(json.dumps({**state, "step": step}, indent=2))
            tmp.rename(final)
            for old in self.directory.glob("step-*"):
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return final


def resumable_batches(
    accelerator: Accelerator,
    loader: DataLoader,
    generator: torch.Generator,
    *,
    seed: int,
    step: int,
    steps_per_epoch: int,
) -> Iterator[Any]:
    """Training batches from ``step`` on, epoch after epoch, exactly as an uninterrupted run sees them.

    ``generator`` drives ``loader``'s sampler and is reseeded with ``seed + epoch``, so the order of an
    epoch does not depend on where a run started; batches already done in the current epoch are
    skipped. Before each batch torch's global RNG is seeded from ``(seed, step)``: dropout then draws
    the same masks as in an uninterrupted run, whatever else consumed random numbers in between (data
    loader iterators do). The caller stops iterating.
    """
    while True:
        epoch, done_in_epoch = divmod(step, steps_per_epoch)
        generator.manual_seed(seed + epoch)
        epoch_loader = accelerator.skip_first_batches(loader, done_in_epoch) if done_in_epoch else loader
        for batch in epoch_loader:
            torch.manual_seed(seed * 1_000_003 + step)
            yield batch
            step += 1


class LengthGroupedBatches(Sampler[list[int]]):
    """Batches of items of similar length, in random order: little compute goes to padding.

    Each epoch shuffles the items with ``generator``, sorts each run of ``batch_size * group``
    shuffled items by length, cuts them into batches and shuffles the batches (as transformers'
    ``LengthGroupedSampler``). Reseeding ``generator`` repeats an epoch exactly, which is what
    :func:`resumable_batches` relies on.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, generator: torch.Generator, group: int = 50):
        self.lengths = lengths
        self.batch_size = batch_size
        self.generator = generator
        self.group = group

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        size = self.batch_size * self.group
        batches = []
        for start in range(0, len(order), size):
            run = sorted(order[start : start + size], key=lambda i: self.lengths[i])
            batches += [run[i : i + self.batch_size] for i in range(0, len(run), self.batch_size)]
        shuffled = torch.randperm(len(batches), generator=self.generator).tolist()
        return iter([batches[i] for i in shuffled])

    def __len__(self) -> int:
        size = self.batch_size * self.group
        full, rest = divmod(len(self.lengths), size)
        return full * self.group + -(-rest // self.batch_size)


def jsonable(args: Namespace) -> dict[str, Any]:
    """Command-line arguments as JSON-ready values (paths, also in lists, as strings), for training records."""

    def ready(value: Any) -> Any:
        if isinstance(value, list):
            return [ready(v) for v in value]
        return str(value) if isinstance(value, Path) else value

    return {key: ready(value) for key, value in vars(args).items()}


def log_record(accelerator: Accelerator, path: Path, record: dict[str, Any], progress: tqdm, message: str) -> None:
    """Append ``record`` to the run's JSON-lines log and print ``message`` above the progress bar (main process)."""
    if accelerator.is_main_process:
        with open(path, "a") as log:
            log.write(json.dumps(record) + "\n")
        progress.write(message)


def note_cpu_threads(accelerator: Accelerator) -> None:
    """On a CPU, say when this process runs on fewer torch threads than its share of the cores: ``accelerate
    launch`` sets ``OMP_NUM_THREADS=1`` unless told otherwise, which leaves the other cores idle."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    share, threads = max(cores // accelerator.num_processes, 1), torch.get_num_threads()
    if accelerator.device.type == "cpu" and threads < share:
        accelerator.print(
            f"torch runs on {threads} thread(s), and this process has {share} cores: "
            f"`accelerate launch --num_cpu_threads_per_process {share} ...` uses them all"
        )


def add_hub_options(parser: argparse.ArgumentParser) -> None:
    """``--push-to-hub REPO_ID`` and ``--hub-private``: publish the exported artefact when training ends."""
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="publish the exported result to this Hub repo")
    parser.add_argument("--hub-private", action="store_true", help="create the --push-to-hub repo private")


def push_if_asked(accelerator: Accelerator, args: Namespace) -> None:
    """Publish ``args.output_dir`` (with its model card) where ``--push-to-hub`` says, from the main process."""
    if args.push_to_hub and accelerator.is_main_process:
        from empexp.publish import push_artefact

        commit = push_artefact(args.output_dir, args.push_to_hub, private=args.hub_private)
        accelerator.print(f"pushed to {commit.commit_url}")
