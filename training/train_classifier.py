"""Fine-tune a LoRA adapter (plus a new classification head) on a text classification TSV.

Builds the embedded default: all-MiniLM-L6-v2 with LoRA on every linear layer, trained on SST-2.
With ``--full`` every weight trains instead and the whole model is exported (a classifier trained
from scratch, or fully fine-tuned).

    accelerate launch training/train_classifier.py --data-dir ../shared/data/sst2 \
        --output-dir empexp/default/classifier

Also runs as plain ``python``. Checkpoints every ``--checkpoint-every`` steps under ``--run-dir`` and
resumes from the newest one when rerun with the same arguments; logs dev accuracy to
``RUN_DIR/log.jsonl`` and exports the best adapter (by dev accuracy) to ``--output-dir``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from peft import LoraConfig, get_peft_model
from torch.utils.data import DataLoader, RandomSampler
from tqdm.auto import tqdm
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    get_linear_schedule_with_warmup,
)

from empexp.cards import DEFAULT_DATASET, write_card
from empexp.classifier import INPUTS_KEY
from empexp.data import Labelled, classification_scores, read_tsv
from empexp.hub import pip_shipped_path
from empexp.training import Checkpointer, add_hub_options, jsonable, log_record, push_if_asked, resumable_batches


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with train.tsv and dev.tsv")
    parser.add_argument("--output-dir", type=Path, required=True, help="where the best adapter is exported")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/classifier"), help="checkpoints and log")
    parser.add_argument("--base", default="sentence-transformers/all-MiniLM-L6-v2", help="Hub id of the base")
    parser.add_argument("--base-path", type=Path, help="load the base from this folder (still recorded as --base)")
    parser.add_argument("--labels", nargs="+", default=["negative", "positive"], help="class names by index")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help="Hub id of the training data, for the model card")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup", type=float, default=0.06, help="fraction of steps with linear warm-up")
    parser.add_argument("--full", action="store_true", help="train every weight (no LoRA); export the whole model")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-alpha", type=int, default=32)
    parser.add_argument("--lora-dropout", type=float, default=0.1)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--max-train", type=int, help="use only the first N training examples")
    parser.add_argument("--seed", type=int, default=0)
    add_hub_options(parser)
    return parser.parse_args()


def build_model(args: argparse.Namespace):
    base_path = args.base_path or pip_shipped_path(args.base) or args.base
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForSequenceClassification.from_pretrained(
        base_path,
        num_labels=len(args.labels),
        id2label=dict(enumerate(args.labels)),
        label2id={label: i for i, label in enumerate(args.labels)},
        dtype=torch.float32,
    )
    if args.full:
        return model, tokenizer
    lora = LoraConfig(
        task_type="SEQ_CLS",  # keeps the new classification head trainable and saved with the adapter
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules="all-linear",
    )
    model = get_peft_model(model, lora)
    # Saved adapters must name the base by Hub id, as any Hub model would, not by this machine's path.
    model.peft_config["default"].base_model_name_or_path = args.base
    return model, tokenizer


def encode(tokenizer, data: Labelled, max_length: int) -> list[dict]:
    """Tokenised examples (pairs truncated longest first, as ``Classifier.encode`` does) with their labels."""
    encoded = tokenizer(data.texts, data.text_pairs, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    return [{**{k: encoded[k][i] for k in keys}, "labels": label} for i, label in enumerate(data.labels)]


@torch.no_grad()
def dev_scores(model, loader, accelerator: Accelerator) -> dict[str, float]:
    """Dev ``accuracy`` and ``f1`` (of class 1)."""
    model.eval()
    predicted, gold = [], []
    for batch in loader:
        predictions = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.argmax(-1)
        predictions, labels = accelerator.gather_for_metrics((predictions, batch["labels"]))
        predicted += predictions.tolist()
        gold += labels.tolist()
    model.train()
    return classification_scores(predicted, gold)


def export(model, tokenizer, accelerator: Accelerator, directory: Path, metrics: dict, inputs: str) -> None:
    """Write the model in Hub layout (the adapter and the classifier config, or with ``--full`` the whole model);
    the config records whether it takes single texts or pairs (``inputs``)."""
    if not accelerator.is_main_process:
        return
    directory.mkdir(parents=True, exist_ok=True)
    unwrapped = accelerator.unwrap_model(model)
    adapter = hasattr(unwrapped, "peft_config")
    setattr(unwrapped.base_model.model.config if adapter else unwrapped.config, INPUTS_KEY, inputs)
    unwrapped.save_pretrained(directory)
    if adapter:
        config = unwrapped.base_model.model.config
        config.architectures = [type(unwrapped.base_model.model).__name__]
        config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "training_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def main() -> None:
    args = parse_args()
    accelerator = Accelerator()
    set_seed(args.seed)
    model, tokenizer = build_model(args)

    train, dev = read_tsv(args.data_dir / "train.tsv"), read_tsv(args.data_dir / "dev.tsv")
    train = train[: args.max_train]
    collate = DataCollatorWithPadding(tokenizer)
    generator = torch.Generator().manual_seed(args.seed)
    train_set = encode(tokenizer, train, args.max_length)
    train_loader = DataLoader(
        train_set, batch_size=args.batch_size, sampler=RandomSampler(train_set, generator=generator), collate_fn=collate
    )
    dev_loader = DataLoader(encode(tokenizer, dev, args.max_length), batch_size=128, collate_fn=collate)

    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=args.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes)
    total_steps = int(args.epochs * steps_per_epoch)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup * total_steps), total_steps)
    model, optimizer, train_loader, dev_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, dev_loader, scheduler
    )

    checkpointer = Checkpointer(accelerator, args.run_dir / "checkpoints")
    state = checkpointer.restore() or {"step": 0, "best_accuracy": 0.0, "best_step": None}
    step = state["step"]
    log_path = args.run_dir / "log.jsonl"
    if accelerator.is_main_process:
        args.run_dir.mkdir(parents=True, exist_ok=True)
        accelerator.print(f"{'resuming at step ' + str(step) if step else 'starting'}; {total_steps} steps in all")

    def evaluate() -> None:
        scores = dev_scores(model, dev_loader, accelerator)
        acc = scores["accuracy"]
        record = {"step": step, "dev_accuracy": acc, "dev_f1": scores["f1"], "loss": loss_value}
        if acc > state["best_accuracy"]:
            state.update(best_accuracy=acc, best_step=step)
            inputs = "text" if train.text_pairs is None else "pair"
            export(model, tokenizer, accelerator, args.run_dir / "best", {**record, "args": jsonable(args)}, inputs)
        message = (
            f"step {step}: dev accuracy {acc:.4f}, F1 {scores['f1']:.4f} (best accuracy {state['best_accuracy']:.4f})"
        )
        log_record(accelerator, log_path, record, progress, message)

    model.train()
    progress = tqdm(total=total_steps, initial=step, desc="train", disable=not accelerator.is_local_main_process)
    loss_value = float("nan")
    batches = resumable_batches(
        accelerator, train_loader, generator, seed=args.seed, step=step, steps_per_epoch=steps_per_epoch
    )
    for batch in batches if step < total_steps else ():
        loss = model(**batch).loss
        accelerator.backward(loss)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        step += 1
        loss_value = loss.item()
        progress.update()
        progress.set_postfix(loss=f"{loss_value:.3f}")
        if step % args.eval_every == 0 or step == total_steps:
            evaluate()
        if step % args.checkpoint_every == 0 or step == total_steps:
            checkpointer.save(step, state)
        if step >= total_steps:
            break
    progress.close()

    if accelerator.is_main_process:
        shutil.copytree(args.run_dir / "best", args.output_dir, dirs_exist_ok=True)
        write_card(args.output_dir, dataset=args.dataset)
        accelerator.print(f"best dev accuracy {state['best_accuracy']:.4f} at step {state['best_step']}")
        accelerator.print(f"exported to {args.output_dir}")
    push_if_asked(accelerator, args)


if __name__ == "__main__":
    main()
