"""Batch prompt files: many dreams from one file, resumable, each done exactly once.

- :mod:`.plan`    the prompt file's lines as jobs with stable ids; shards (``--shard``, Slurm arrays) and devices
- :mod:`.store`   the batch folder: ``batch.json``, ``manifest.jsonl``, claims, the gallery
- :mod:`.runner`  running the jobs, one attempt at a time, each recorded
- :mod:`.status`  how far a batch is (``textsleep batch --status``)
- :mod:`.launch`  starting one as ``textsleep batch`` asks: its options, its folder and shard, a worker per device

>>> plan = plan_batch("prompts/overnight.txt", {"iterations": 200})        # doctest: +SKIP
>>> folder = BatchFolder.prepare("outputs/batch-overnight", plan)          # doctest: +SKIP
>>> for event in run_jobs(folder, plan.jobs):                               # doctest: +SKIP
...     print(event.kind, event.job.prompt)
"""

from .launch import BatchOptions, Launch, launch, plan_lines, run_workers
from .plan import (
    Job,
    Plan,
    parse_devices,
    parse_repeat,
    parse_seeds,
    parse_shard,
    plan_batch,
    select_shard,
    shard_from_env,
)
from .runner import Event, run_jobs
from .status import BatchStatus, Progress, batch_status, progress
from .store import BatchFolder

__all__ = [
    "plan_batch",
    "BatchFolder",
    "run_jobs",
    "batch_status",
    "progress",
    "parse_shard",
    "shard_from_env",
    "select_shard",
    "parse_seeds",
    "parse_repeat",
    "parse_devices",
    "Job",
    "Plan",
    "Event",
    "Progress",
    "BatchStatus",
    "BatchOptions",
    "Launch",
    "plan_lines",
    "launch",
    "run_workers",
]
