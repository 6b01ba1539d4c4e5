"""Loop pieces shared by the training scripts: atomic checkpoints that resume after a kill."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator

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
