"""Train DiffMask probes (input or hidden variant) for a classifier on unlabelled texts.

    accelerate launch training/train_diffmask.py --data ../shared/data/sst2/train.tsv \
        --dev ../shared/data/sst2/dev.tsv --variant input --output-dir empexp/default/diffmask-input

The classifier is frozen; the probes learn to close as many gates as the KL margin allows (see
``empexp.diffmask``). Each step samples one hook point. Optimisers: centred RMSprop, as in the paper,
for probes and baselines, its learning rate optionally warmed up over ``--warmup`` of the steps; centred
RMSprop with ``maximize=True`` for the Lagrange multipliers, clipped to ``[0, 200]`` (the paper's code
does not centre it; on the toy task only the centred one found the query digits in 2,000 steps).
Validation (deterministic gates) logs per point the KL, the agreement of masked and
original predictions and the fraction of tokens kept. Checkpoints every ``--checkpoint-every`` steps
under ``--run-dir`` and resumes from the newest one when rerun; the final probes are exported with
``diffmask_metrics.json`` and a model card.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, RandomSampler
from tqdm.auto import tqdm
from transformers import get_constant_schedule_with_warmup

from empexp.cards import write_card
from empexp.classifier import load_classifier
from empexp.data import read_texts
from empexp.diffmask import METRICS, VARIANTS, DiffMaskModel, validation
from empexp.training import Checkpointer, add_hub_options, jsonable, log_record, push_if_asked, resumable_batches


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="training texts: a TSV with a header, or one per line")
    parser.add_argument("--dev", type=Path, help="validation texts (default: --val-fraction of --data)")
    parser.add_argument("--output-dir", type=Path, required=True, help="where the trained probes are exported")
    parser.add_argument("--run-dir", type=Path, help="checkpoints and log (default: runs/<output-dir name>)")
    parser.add_argument("--model", help="the classifier probed (default: the embedded default)")
    parser.add_argument("--revision")
    parser.add_argument("--variant", choices=VARIANTS, default="input")
    parser.add_argument("--margin", type=float, default=0.1, help="KL divergence allowed (the constraint)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4, help="probes")
    parser.add_argument(
        "--baseline-lr", type=float, default=1e-4, help="baselines (slower: a fast one learns to encode a class)"
    )
    parser.add_argument("--multiplier-lr", type=float, default=0.3, help="Lagrange multipliers (gradient ascent)")
    parser.add_argument(
        "--warmup", type=float, default=0.0, help="fraction of steps with linear warm-up of the probes' learning rate"
    )
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--max-train", type=int, help="use only the first N training texts")
    parser.add_argument("--max-dev", type=int, default=1000, help="validate on at most N texts")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    add_hub_options(parser)
    return parser.parse_args(argv)


def split(texts: list[str], args: argparse.Namespace) -> tuple[list[str], list[str]]:
    if args.dev:
        return texts, read_texts(args.dev)
    order = list(range(len(texts)))
    random.Random(args.seed).shuffle(order)
    cut = int(len(texts) * args.val_fraction)
    return [texts[i] for i in order[cut:]], [texts[i] for i in order[:cut]]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_dir = args.run_dir or Path("runs") / args.output_dir.name
    # Each step trains the probes up to one sampled point only; DDP must allow the others to sit out.
    accelerator = Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    set_seed(args.seed)
    classifier = load_classifier(args.model, revision=args.revision, device=accelerator.device)
    classifier.model.requires_grad_(False)

    train_texts, dev_texts = split(read_texts(args.data), args)
    train_texts = train_texts[: args.max_train]
    dev_texts = dev_texts[: args.max_dev]
    train_set, dev_set = classifier.encode(train_texts), classifier.encode(dev_texts)
    generator = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(
        train_set,
        batch_size=args.batch_size,
        sampler=RandomSampler(train_set, generator=generator),
        collate_fn=classifier.collate,
    )
    dev_loader = DataLoader(dev_set, batch_size=64, collate_fn=classifier.collate)

    model = DiffMaskModel(classifier, explains=classifier.identity(), variant=args.variant, margin=args.margin)
    groups = [
        {"params": list(model.probes.parameters()), "lr": args.lr},
        {"params": list(model.baselines.parameters()), "lr": args.baseline_lr},
    ]
    optimizer = torch.optim.RMSprop(groups, centered=True)
    # RMSprop's first steps, its running average still near zero, are large: on SST-2 they shut most
    # gates within a few steps. The paper's code warms up over 1,200 steps; on the toy task, warm-up
    # slowed learning down a lot, hence an option (default off) rather than always on.
    scheduler = get_constant_schedule_with_warmup(optimizer, int(args.warmup * args.steps))
    ascent = torch.optim.RMSprop([model.multipliers], lr=args.multiplier_lr, centered=True, maximize=True)
    model, optimizer, ascent, train_loader, dev_loader, scheduler = accelerator.prepare(
        model, optimizer, ascent, train_loader, dev_loader, scheduler
    )
    steps_per_epoch = len(train_loader)
    probed = accelerator.unwrap_model(model)

    checkpointer = Checkpointer(accelerator, run_dir / "checkpoints")
    state = checkpointer.restore() or {"step": 0}
    step = state["step"]
    log_path = run_dir / "log.jsonl"
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        accelerator.print(f"{'resuming at step ' + str(step) if step else 'starting'}; {args.steps} steps in all")

    def evaluate() -> dict:
        model.eval()
        record = {"step": step, **validation(probed, classifier, dev_loader, accelerator.gather_for_metrics)}
        model.train()
        kl = " ".join(f"{v:.3f}" for v in record["kl"])
        kept = " ".join(f"{v:.2f}" for v in record["kept"])
        log_record(accelerator, log_path, record, progress, f"step {step}: KL per point {kl}; kept {kept}")
        return record

    model.train()
    progress = tqdm(total=args.steps, initial=step, desc="diffmask", disable=not accelerator.is_local_main_process)
    batches = resumable_batches(
        accelerator, train_loader, generator, seed=args.seed, step=step, steps_per_epoch=steps_per_epoch
    )
    for batch in batches if step < args.steps else ():
        # Drawn after resumable_batches seeded torch for this step: a resumed run samples the same points.
        point = int(torch.randint(probed.points, ()))
        loss, parts = model(classifier, batch, point)
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        ascent.step()
        optimizer.zero_grad()
        ascent.zero_grad()
        probed.clamp_multipliers()
        step += 1
        progress.update()
        progress.set_postfix(point=point, kl=f"{parts['kl']:.3f}", l0=f"{parts['expected_l0']:.2f}")
        if step % args.eval_every == 0 and step < args.steps:
            evaluate()
        if step % args.checkpoint_every == 0 or step == args.steps:
            checkpointer.save(step, state)
        if step >= args.steps:
            break
    progress.close()

    record = evaluate()
    if accelerator.is_main_process:
        probed.save_pretrained(args.output_dir)
        metrics = {**record, "texts": len(dev_set), "args": jsonable(args)}
        (args.output_dir / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
        write_card(args.output_dir)
        accelerator.print(f"exported to {args.output_dir}")
    push_if_asked(accelerator, args)


if __name__ == "__main__":
    main()
