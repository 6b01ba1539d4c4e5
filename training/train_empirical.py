"""Train an empirical explainer (MSE) on targets from ``generate_targets.py``, or on labels drawn on the fly.

    accelerate launch training/train_empirical.py --targets runs/targets/ig \
        --variant encoder --output-dir empexp/default/empirical-ig
    accelerate launch training/train_empirical.py --data ../shared/data/sst2/train.tsv --nodes 1 \
        --pseudo-documents 5000 --val-targets runs/targets/ig-val --output-dir my-empirical-ig
    accelerate launch training/train_empirical.py --data ../shared/data/sst2/train.tsv --permutations 2 \
        --val-targets runs/targets/sv-val --output-dir my-empirical-sv

``--variant encoder``: a LoRA-adapted copy of the classifier's encoder plus a per-token head (one extra
pass per explanation); with ``--branch k`` only layers k+1..L are copied and continue from the
classifier's own layer k (a fraction (L-k)/L of a pass). ``--variant head``: the head alone on the
classifier's own hidden states (no extra pass).

With ``--targets`` (one folder or several, e.g. sentences and long pseudo-documents) a seeded split
holds out ``--val-fraction`` of the targets for validation, or ``--val-targets`` names a folder to validate
on (its texts are left out of training). With
``--data`` every step labels its batch afresh with a cheap unbiased estimate of what ``--val-targets``
hold (``empexp.estimators``): for IG with 20 Gauss-Legendre steps, ``--nodes`` nodes drawn by their
weights; for SV, ``--permutations`` random orders, every second one the previous reversed. Stochastic
amortization: no target files, new noise every epoch; ``--pseudo-documents N`` adds N long texts (training
texts joined) so that length is not out of distribution; validation is on the exact targets of
``--val-targets`` (texts found there are left out of training). Validation MSE is measured every
``--eval-every`` steps, the best model is exported (``--export-latest``: the newest, validated where it
is), and training stops after ``--patience`` evaluations without improvement. Checkpoints every
``--checkpoint-every`` steps under ``--run-dir``; rerunning the same command resumes from the newest one
(labels drawn on the fly are seeded per step, so a resumed run draws the same ones). Every validation logs
what the labels behind it cost in CPU time (``benchmarks/label_tradeoff.py`` compares runs at equal label
budgets).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from functools import partial
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from safetensors.torch import load_file
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from empexp import load_classifier
from empexp.artefact import WEIGHTS_NAME
from empexp.cards import DEFAULT_DATASET, write_card
from empexp.classifier import Batch, Classifier
from empexp.data import pseudo_documents, read_texts
from empexp.estimators import draw_nodes, draw_text_permutations, ig_node_estimates, sv_permutation_estimates
from empexp.imitator import TRAINING_METRICS, EmpiricalModel, ScoreTotals, target_mse
from empexp.targets import (
    CPU_SECONDS,
    TargetBatch,
    collate_targets,
    load_targets,
    same_estimand,
    total_cpu_seconds,
)
from empexp.training import (
    Checkpointer,
    LengthGroupedBatches,
    add_hub_options,
    jsonable,
    log_record,
    note_cpu_threads,
    push_if_asked,
    resumable_batches,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--targets", type=Path, nargs="+", help="finished target folders (same classifier and method; IG: same steps)"
    )
    source.add_argument(
        "--data", type=Path, help="texts labelled on the fly (IG: drawn Gauss-Legendre nodes; SV: permutations)"
    )
    parser.add_argument("--nodes", type=int, default=1, help="with --data, for IG: Gauss-Legendre nodes per text")
    parser.add_argument("--permutations", type=int, default=2, help="with --data, for SV: permutations per text")
    parser.add_argument(
        "--val-targets",
        type=Path,
        help="a finished target folder to validate on (needed with --data; with --targets it replaces the split, "
        "and its texts are left out of training)",
    )
    parser.add_argument("--min-words", type=int, default=1, help="with --data: skip texts with fewer words")
    parser.add_argument("--pseudo-documents", type=int, default=0, help="with --data: long texts added")
    parser.add_argument(
        "--init", type=Path, help="start from this explainer folder's weights (its head only if it copies other layers)"
    )
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help="Hub id of the training data, for the model card")
    parser.add_argument(
        "--output-dir", type=Path, required=True, help="where the explainer is exported (the best validated one)"
    )
    parser.add_argument(
        "--export-latest",
        action="store_true",
        help="export the newest weights (at the end of --epochs, or where a rerun resumes), validated there, "
        "instead of the best validated ones: for validation targets unlike the texts the explainer will see",
    )
    parser.add_argument("--run-dir", type=Path, help="checkpoints and log (default: runs/<output-dir name>)")
    parser.add_argument("--model", help="the classifier the targets explain (default: the embedded default)")
    parser.add_argument("--revision")
    parser.add_argument("--variant", choices=["encoder", "head"], default="encoder")
    parser.add_argument(
        "--branch",
        type=int,
        default=0,
        help="with --variant encoder: copy only the layers after this one, continuing from the classifier's "
        "hidden states there (0: the whole encoder)",
    )
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-alpha", type=int, default=32)
    parser.add_argument("--head-size", type=int, default=128)
    parser.add_argument(
        "--no-completeness",
        action="store_true",
        help="do not make the scores add up to f(input) - f(baseline) (IG's completeness, SV's efficiency)",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="record that the copy runs with int8 weights on a CPU (training is float; check convergence with it)",
    )
    parser.add_argument("--epochs", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup", type=float, default=0.06, help="fraction of steps with linear warm-up")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--eval-every", type=int, help="steps between validations (default: once per epoch)")
    parser.add_argument("--patience", type=int, default=3, help="validations without improvement before stopping")
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    add_hub_options(parser)
    return parser.parse_args(argv)


def split(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded train/validation split of ``range(n)`` (at least one validation instance)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(n * val_fraction))
    return sorted(order[n_val:]), sorted(order[:n_val])


def load_target_folders(folders: list[Path]) -> tuple[list, dict]:
    """The targets of several finished folders, and the first one's metadata with what all their labels cost;
    refuses folders that explain another classifier or estimate other scores than the first."""
    targets, metadata = load_targets(folders[0])
    everyone = [metadata]
    for folder in folders[1:]:
        more, other = load_targets(folder)
        same = {
            "classifier": other["classifier"] == metadata["classifier"],
            "explainer": same_estimand(other["explainer"], metadata["explainer"]),
        }
        differs = next((key for key, alike in same.items() if not alike), None)
        if differs:
            raise SystemExit(f"{folder}'s targets differ from {folders[0]}'s in their {differs}: train on one kind")
        targets += more
        everyone.append(other)
    return targets, {**metadata, CPU_SECONDS: total_cpu_seconds(everyone)}


def start_from(model: EmpiricalModel, folder: Path, accelerator: Accelerator) -> None:
    """Load an explainer's weights as the start: all of them where its copy has the same layers, else its head."""
    weights = load_file(folder / WEIGHTS_NAME, device=str(accelerator.device))
    config = json.loads((folder / "config.json").read_text())
    if (config.get("adapter"), config.get("branch", 0)) != (model.adapter, model.branch):
        # The copy's layers are numbered from the branch: another layout's LoRA weights would land on other layers.
        weights = {k: v for k, v in weights.items() if k.startswith("head.")}
        accelerator.print(f"{folder} copies other layers: starting from its head only")
    model.load_state_dict(weights, strict=False)


def label_on_the_fly(classifier: Classifier, batch: Batch, method: str, draws: int) -> TargetBatch:
    """A text batch with what a target batch holds: the prediction, and as attributions unbiased estimates of
    ``method`` (``"ig"``: ``draws`` Gauss-Legendre nodes; ``"sv"``: ``draws`` permutations).

    The draws come from torch's global generator, which the training loop seeds per step.
    """
    logits = classifier.logits(batch)
    predicted = logits.argmax(-1)
    if method == "ig":
        drawn = draw_nodes(len(predicted), draws).to(predicted.device)
        attributions = ig_node_estimates(classifier, batch, predicted, drawn)
    else:
        attributions = sv_permutation_estimates(classifier, batch, predicted, draw_text_permutations(batch, draws))
    return TargetBatch(**batch.tensors(), predicted=predicted, logits=logits.float(), attributions=attributions)


@torch.no_grad()
def validation_mse(
    model, classifier: Classifier, loader, accelerator: Accelerator, reads_hidden_states: bool, totals
) -> float:
    model.eval()
    losses = [
        accelerator.gather_for_metrics(
            target_mse(model, classifier, batch, reads_hidden_states=reads_hidden_states, totals=totals)
        )
        for batch in loader
    ]
    model.train()
    return torch.cat(losses).mean().item()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run_dir = args.run_dir or Path("runs") / args.output_dir.name
    accelerator = Accelerator()
    note_cpu_threads(accelerator)
    set_seed(args.seed)
    classifier = load_classifier(args.model, revision=args.revision, device=accelerator.device)
    classifier.model.requires_grad_(False)
    collate = partial(
        collate_targets, pad_token_id=classifier.tokenizer.pad_token_id, padding_side=classifier.tokenizer.padding_side
    )
    if args.data and args.val_targets is None:
        raise SystemExit("--data needs --val-targets: exact targets to validate on")
    if args.val_targets:
        val_set, val_metadata = load_targets(args.val_targets)
        held_out = {tuple(t.input_ids.tolist()) for t in val_set}
    if args.targets:
        targets, metadata = load_target_folders(args.targets)
        if args.val_targets:
            # Validation may be more precise (SV with more permutations), but of the same method and classifier.
            ours, theirs = ((m["classifier"], m["explainer"]["method"]) for m in (metadata, val_metadata))
            if ours != theirs:
                raise SystemExit(f"{args.val_targets} explains another classifier or method than {args.targets[0]}")
            train_set = [t for t in targets if tuple(t.input_ids.tolist()) not in held_out]
        else:
            train_ids, val_ids = split(len(targets), args.val_fraction, args.seed)
            train_set, val_set = [targets[i] for i in train_ids], [targets[i] for i in val_ids]
        train_collate = collate
    else:
        metadata = val_metadata
        texts = [text for text in read_texts(args.data) if len(text.split()) >= args.min_words]
        texts += pseudo_documents(texts, args.pseudo_documents, seed=args.seed)
        train_set = [e for e in classifier.encode(texts) if tuple(e.input_ids) not in held_out]
        train_collate = classifier.collate
        method = metadata["explainer"]["method"]
        draws = args.nodes if method == "ig" else args.permutations
    adapter = {"r": args.lora_r, "alpha": args.lora_alpha} if args.variant == "encoder" else None
    # Refuses a classifier other than the targets' own.
    model = EmpiricalModel(
        classifier,
        explains=metadata["classifier"],
        imitates=metadata["explainer"],
        adapter=adapter,
        branch=args.branch,
        head_size=args.head_size,
        complete=not args.no_completeness,
        int8=args.int8,
    )
    reads_hidden_states = model.reads_hidden_states
    if args.init:
        start_from(model, args.init, accelerator)
    totals = None if args.no_completeness else ScoreTotals(classifier)

    generator = torch.Generator().manual_seed(args.seed)
    # Every step costs passes at the batch's padded length (long documents among sentences): batch similar lengths.
    batches = LengthGroupedBatches([len(e.input_ids) for e in train_set], args.batch_size, generator)
    train_loader = DataLoader(train_set, batch_sampler=batches, collate_fn=train_collate)
    val_loader = DataLoader(val_set, batch_size=64, collate_fn=collate)

    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=args.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes)
    total_steps = int(args.epochs * steps_per_epoch)
    eval_every = args.eval_every or steps_per_epoch
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup * total_steps), total_steps)
    model, optimizer, train_loader, val_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, val_loader, scheduler
    )

    checkpointer = Checkpointer(accelerator, run_dir / "checkpoints")
    state = checkpointer.restore() or {"step": 0, "best_mse": None, "best_step": None, "bad_evals": 0}
    if args.data:  # labels drawn on the fly: their cost accumulates with the steps (and resumes with them)
        state.setdefault(CPU_SECONDS, 0.0)
    else:
        state[CPU_SECONDS] = metadata[CPU_SECONDS]  # labels made beforehand: what they all cost
    step = state["step"]
    log_path = run_dir / "log.jsonl"
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        accelerator.print(
            f"{len(train_set)} train / {len(val_set)} validation instances; "
            f"{'resuming at step ' + str(step) if step else 'starting'}; at most {total_steps} steps"
        )

    def measure() -> dict:
        return {
            "step": step,
            "epoch": step / steps_per_epoch,
            "val_mse": validation_mse(model, classifier, val_loader, accelerator, reads_hidden_states, totals),
            "train_loss": loss_value if math.isfinite(loss_value) else None,  # None: no step since a resume
            CPU_SECONDS: state[CPU_SECONDS],
        }

    def save(folder: Path, record: dict) -> None:
        if accelerator.is_main_process:
            accelerator.unwrap_model(model).save_pretrained(folder)
            metrics = {**record, "targets": len(train_set), "args": jsonable(args)}
            (folder / TRAINING_METRICS).write_text(json.dumps(metrics, indent=2) + "\n")

    def evaluate() -> dict:
        record = measure()
        mse = record["val_mse"]
        if state["best_mse"] is None or mse < state["best_mse"]:
            state.update(best_mse=mse, best_step=step, bad_evals=0)
            save(run_dir / "best", record)
        else:
            state["bad_evals"] += 1
        message = f"step {step}: validation MSE {mse:.5f} (best {state['best_mse']:.5f})"
        log_record(accelerator, log_path, record, progress, message)
        return record

    model.train()
    progress = tqdm(total=total_steps, initial=step, desc="train", disable=not accelerator.is_local_main_process)
    loss_value, evaluated = float("nan"), None
    batches = resumable_batches(
        accelerator, train_loader, generator, seed=args.seed, step=step, steps_per_epoch=steps_per_epoch
    )
    done = step >= total_steps or state["bad_evals"] >= args.patience
    for batch in batches if not done else ():
        if args.data:
            start = time.process_time()
            batch = label_on_the_fly(classifier, batch, method, draws)
            spent = torch.tensor(time.process_time() - start, device=accelerator.device)
            state[CPU_SECONDS] += accelerator.reduce(spent, reduction="sum").item()  # every process's labels
        loss = target_mse(model, classifier, batch, reads_hidden_states=reads_hidden_states, totals=totals).mean()
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        step += 1
        loss_value = loss.item()
        progress.update()
        progress.set_postfix(loss=f"{loss_value:.4f}")
        if step % eval_every == 0 or step == total_steps:
            evaluated = evaluate()
        done = step >= total_steps or state["bad_evals"] >= args.patience
        if step % args.checkpoint_every == 0 or done:
            checkpointer.save(step, state)
        if done:
            break
    progress.close()

    exported = run_dir / "best"
    if args.export_latest:  # beside "best", which a rerun without the flag still exports
        exported = run_dir / "latest"
        # A run that just ended validated its last step already; a rerun that trained nothing has not.
        record = evaluated if evaluated and evaluated["step"] == step else measure()
        save(exported, record)
        accelerator.print(f"newest weights: validation MSE {record['val_mse']:.5f} at step {step}")
    if accelerator.is_main_process:
        if state["bad_evals"] >= args.patience:
            accelerator.print(f"stopped early at step {step}: no improvement in {args.patience} validations")
        shutil.copytree(exported, args.output_dir, dirs_exist_ok=True)
        write_card(args.output_dir, dataset=args.dataset)
        accelerator.print(f"best validation MSE {state['best_mse']:.5f} at step {state['best_step']}")
        accelerator.print(f"exported {exported.name} to {args.output_dir}")
    push_if_asked(accelerator, args)


if __name__ == "__main__":
    main()
