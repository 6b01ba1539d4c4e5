"""Train DiffMask probes (input or hidden variant) for a classifier on unlabelled texts.

    accelerate launch training/train_diffmask.py --data ../shared/data/sst2/train.tsv \
        --dev ../shared/data/sst2/dev.tsv --variant input --output-dir empexp/default/diffmask-input

The classifier is frozen; the probes learn to close as many gates as the KL margin allows (see
``empexp.probes``). Each step samples one hook point (of ``--points``, default all) and steps only its
probe(s), baseline and multiplier; optimisers as in the paper's code (``empexp.probes.probe_optimisers``:
centred RMSprop warmed up over ``--warmup`` steps; Lookahead RMSprop ascent for the multipliers). A run
can start from trained probes (``--init``): hidden probes are independent per point, so ``--points 5``
trains one point further and keeps the others as they are. Validation every
``--eval-every`` steps logs per point the KL (deterministic and sampled gates), the agreement of masked
and original predictions, the fraction kept and the keep rate per predicted class; the checkpoint kept
is the one with the lowest keep rate whose sampled-gate KL is within the margin at every point
(``empexp.probes.better``; ``--export-latest``: the newest probes, measured, whether or not they are).
Checkpoints every ``--checkpoint-every`` steps under ``--run-dir``; rerunning resumes from the newest one.
The kept probes are exported with ``diffmask_metrics.json`` and a model card. Torch threads are pinned
(``--threads``): the same seed gives the same probes.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from empexp.cards import DEFAULT_DATASET, read_json, write_card
from empexp.classifier import load_classifier
from empexp.data import read_instances, select_texts
from empexp.probes import (
    METRICS,
    RUN_RECORD,
    VARIANTS,
    DiffMaskModel,
    ProbeOptimisers,
    better,
    load_diffmask,
    probe_optimisers,
    validation,
)
from empexp.training import (
    Checkpointer,
    LengthGroupedBatches,
    add_hub_options,
    jsonable,
    log_record,
    push_if_asked,
    resumable_batches,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, required=True, help="training texts or pairs: a TSV with a header, or one text per line"
    )
    parser.add_argument("--dev", type=Path, help="validation texts (default: --val-fraction of --data)")
    parser.add_argument("--output-dir", type=Path, required=True, help="where the trained probes are exported")
    parser.add_argument("--run-dir", type=Path, help="checkpoints and log (default: runs/<output-dir name>)")
    parser.add_argument("--model", help="the classifier probed (default: the embedded default)")
    parser.add_argument("--revision")
    parser.add_argument("--variant", choices=VARIANTS, default="input")
    parser.add_argument("--margin", type=float, default=0.1, help="KL divergence allowed (the constraint)")
    parser.add_argument(
        "--aim",
        type=float,
        help="the KL the multipliers hold the masked prediction at (default: --margin); below it, the checkpoint "
        "rule (sampled KL's mean + 2 SE within the margin at every point) can select",
    )
    parser.add_argument(
        "--leakage",
        type=float,
        default=0.0,
        help="weight of a penalty on keep rates that tell the predicted class (default 0: the paper's objective)",
    )
    parser.add_argument("--gate-special", action="store_true", help="gate [CLS]/[SEP] too, as the paper does")
    parser.add_argument("--steps", type=int, default=30000)
    parser.add_argument(
        "--init",
        type=Path,
        help="start from these probes (probes and baselines; the multipliers start afresh); a run that resumes from "
        "its checkpoint restores that instead",
    )
    parser.add_argument(
        "--points",
        type=int,
        nargs="+",
        help="train only these hook points (each step samples one of them; default: all). Hidden probes are "
        "independent per point, so the others stay as --init has them",
    )
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help="Hub id of the training data, for the model card")
    parser.add_argument(
        "--export-latest",
        action="store_true",
        help="export the newest probes (at --steps, or where a rerun resumes) whether or not they are within the "
        "margin, instead of the best checkpoint that is; their measured table says how far they are",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4, help="probes")
    parser.add_argument(
        "--baseline-lr", type=float, default=1e-4, help="baselines (slower: a fast one learns to encode a class)"
    )
    parser.add_argument("--multiplier-lr", type=float, default=0.3, help="Lagrange multipliers (gradient ascent)")
    parser.add_argument("--warmup", type=int, default=1200, help="steps of linear warm-up of the probes' learning rate")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on a CPU (results depend on it)")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--max-train", type=int, help="use only N training texts (drawn with --seed)")
    parser.add_argument(
        "--min-words",
        type=int,
        default=1,
        help="train on texts of at least N words (SST-2's train phrases are shorter than its dev sentences, and "
        "the KL a mask costs grows with length: the margin learned on short phrases does not hold on sentences)",
    )
    parser.add_argument("--max-dev", type=int, default=1000, help="validate on at most N texts")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    add_hub_options(parser)
    return parser.parse_args(argv)


Instances = tuple[list[str], list[str] | None]
"""Texts and their pairs (``None`` for single texts), as :func:`empexp.data.read_instances` gives them."""


def split(instances: Instances, args: argparse.Namespace) -> tuple[Instances, Instances]:
    """Training and validation instances: ``--dev``'s, or a seeded ``--val-fraction`` of ``--data``'s."""
    if args.dev:
        return instances, read_instances(args.dev)
    texts, text_pairs = instances
    order = list(range(len(texts)))
    random.Random(args.seed).shuffle(order)
    cut = int(len(texts) * args.val_fraction)

    def pick(rows: list[int]) -> Instances:
        return [texts[i] for i in rows], None if text_pairs is None else [text_pairs[i] for i in rows]

    return pick(order[cut:]), pick(order[:cut])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_dir = args.run_dir or Path("runs") / args.output_dir.name
    # Each step trains the probes up to one sampled point only; DDP must allow the others to sit out.
    accelerator = Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    if accelerator.device.type == "cpu":
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    classifier = load_classifier(args.model, revision=args.revision, device=accelerator.device)
    classifier.model.requires_grad_(False)

    (train_texts, train_pairs), (dev_texts, dev_pairs) = split(read_instances(args.data), args)
    train_texts, train_pairs = select_texts(
        train_texts, train_pairs, limit=args.max_train, min_words=args.min_words, seed=args.seed
    )
    train_set = classifier.encode(train_texts, train_pairs)
    dev_set = classifier.encode(dev_texts[: args.max_dev], dev_pairs and dev_pairs[: args.max_dev])
    generator = torch.Generator().manual_seed(args.seed)
    # Every step costs passes at the batch's padded length (SST-2 phrases: median 10 word pieces, some
    # over 40): batch similar lengths, and validate in order of length.
    batches = LengthGroupedBatches([len(e.input_ids) for e in train_set], args.batch_size, generator)
    train_loader = DataLoader(train_set, batch_sampler=batches, collate_fn=classifier.collate)
    dev_set = sorted(dev_set, key=lambda e: len(e.input_ids))
    dev_loader = DataLoader(dev_set, batch_size=64, collate_fn=classifier.collate)

    model = DiffMaskModel(
        classifier,
        explains=classifier.identity(),
        variant=args.variant,
        margin=args.margin,
        gate_special=args.gate_special,
        aim=args.aim,
        leakage=args.leakage,
    )
    points = args.points or list(range(model.points))
    if not set(points) <= set(range(model.points)):
        raise SystemExit(f"--points must be hook points 0..{model.points - 1}, got {args.points}")
    if args.init:
        initial = load_diffmask(args.init, classifier)
        if initial.variant != model.variant:
            raise SystemExit(f"--init {args.init} holds {initial.variant} probes, not {model.variant} ones")
        model.load_state_dict(initial.trainable_state_dict(), strict=False)
    optimisers = probe_optimisers(
        model, lr=args.lr, baseline_lr=args.baseline_lr, multiplier_lr=args.multiplier_lr, warmup_steps=args.warmup
    )
    model, optimizer, ascent, train_loader, dev_loader, scheduler = accelerator.prepare(
        model, optimisers.probes, optimisers.multipliers, train_loader, dev_loader, optimisers.schedule
    )
    optimisers = ProbeOptimisers(optimizer, scheduler, ascent)
    steps_per_epoch = len(train_loader)
    probed = accelerator.unwrap_model(model)

    checkpointer = Checkpointer(accelerator, run_dir / "checkpoints")
    state = checkpointer.restore() or {"step": 0, "best": None}
    step = state["step"]
    # A resumed run may change --aim; the card's command shows only the last, so keep when each held.
    aims = state.setdefault("aims", [[0, probed.aim]])
    if aims[-1][1] != probed.aim:
        aims.append([step, probed.aim])
    log_path = run_dir / "log.jsonl"
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        accelerator.print(f"{'resuming at step ' + str(step) if step else 'starting'}; {args.steps} steps in all")

    def evaluate() -> None:
        model.eval()
        record = {"step": step, **validation(probed, classifier, dev_loader, accelerator.gather_for_metrics)}
        model.train()
        if better(record, state["best"], probed.margin):
            state["best"] = record
            if accelerator.is_main_process:
                probed.save_pretrained(run_dir / "best")
        kl = " ".join(f"{v:.3f}" for v in record["sampled_kl"])
        kept = " ".join(f"{v:.2f}" for v in record["l0"])
        chosen = f"kept: step {state['best']['step']}" if state["best"] else "none within the margin yet"
        log_record(accelerator, log_path, record, progress, f"step {step}: sampled KL {kl}; keep {kept}; {chosen}")

    model.train()
    progress = tqdm(total=args.steps, initial=step, desc="diffmask", disable=not accelerator.is_local_main_process)
    batches = resumable_batches(
        accelerator, train_loader, generator, seed=args.seed, step=step, steps_per_epoch=steps_per_epoch
    )
    for batch in batches if step < args.steps else ():
        # Drawn after resumable_batches seeded torch for this step: a resumed run samples the same points.
        point = points[int(torch.randint(len(points), ()))]
        loss, parts = model(classifier, batch, point)
        accelerator.backward(loss)
        optimisers.step(probed)
        step += 1
        progress.update()
        progress.set_postfix(point=point, kl=f"{parts['kl']:.3f}", l0=f"{parts['l0']:.2f}")
        if step % args.eval_every == 0 or step == args.steps:
            evaluate()
        if step % args.checkpoint_every == 0 or step == args.steps:
            checkpointer.save(step, state)
        if step >= args.steps:
            break
    progress.close()

    if args.export_latest:  # measured here, so the metrics and card say how far it is from the margin
        model.eval()
        state["best"] = {"step": step, **validation(probed, classifier, dev_loader, accelerator.gather_for_metrics)}
        if accelerator.is_main_process:
            probed.save_pretrained(run_dir / "best")
    if accelerator.is_main_process:
        if state["best"] is None:
            raise SystemExit(f"no checkpoint was within the margin {args.margin}: train longer or raise --margin")
        shutil.copytree(run_dir / "best", args.output_dir, dirs_exist_ok=True)
        held = [[start, aim] for start, aim in aims if start < state["best"]["step"] or start == 0]
        metrics = {**state["best"], "args": jsonable(args), "aims": held}
        started = args.init and read_json(args.init / METRICS)
        if started:  # how the probes it started from were trained, so the card can say both stages
            metrics["init"] = {key: started[key] for key in RUN_RECORD if key in started}
        (args.output_dir / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
        write_card(args.output_dir, dataset=args.dataset)
        accelerator.print(f"kept step {state['best']['step']}; exported to {args.output_dir}")
    push_if_asked(accelerator, args)


if __name__ == "__main__":
    main()
