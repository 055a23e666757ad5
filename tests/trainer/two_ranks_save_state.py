"""One rank of a two-process checkpoint save, with rank 1 writing slowly (a busy disk).

Run twice by test_launch.py with RANK/WORLD_SIZE/MASTER_* set; prints where it saved.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import accelerate.accelerator
import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs

from trainer.checkpoints import save_checkpoint

original_save = accelerate.accelerator.save_accelerator_state


def slow_on_rank_one(*args, **kwargs):
    if os.environ["RANK"] == "1":
        time.sleep(2.0)
    return original_save(*args, **kwargs)


accelerate.accelerator.save_accelerator_state = slow_on_rank_one
accelerator = Accelerator(
    cpu=True, kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=40))]
)
model = torch.nn.Linear(2, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model, optimizer = accelerator.prepare(model, optimizer)
saved = save_checkpoint(accelerator, Path(sys.argv[1]), 1, ema=None, keep=None)
accelerator.wait_for_everyone()
print(f"rank {accelerator.process_index} saved {saved}", flush=True)
