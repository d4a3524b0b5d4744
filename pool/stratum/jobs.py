"""The job registry: job id -> job for share checks, and each job's notify encoded once.

Only jobs on the current tip are kept (the newest `keep` of them); a share for any other job
is stale (error 21). Each job carries the set of header hashes already accepted for it, so a
duplicate is found by its hash whatever case or padding the miner used in its hex.
"""

from __future__ import annotations

import json
from collections import OrderedDict

from pool.chain.job import Job


class JobEntry:
    """A job plus what the stratum layer keeps per job."""

    __slots__ = ("job", "notify_clean", "notify_update", "seen")

    def __init__(self, job: Job) -> None:
        self.job = job
        self.seen: set[bytes] = set()
        self.notify_clean = encode_notify(job, clean=True)
        self.notify_update = encode_notify(job, clean=False)

    def notify(self, clean: bool) -> bytes:
        return self.notify_clean if clean else self.notify_update


def encode_notify(job: Job, clean: bool) -> bytes:
    """The `mining.notify` line for a job, as bytes (the same bytes go to every session)."""
    message = {"id": None, "method": "mining.notify", "params": job.notify_params(clean)}
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


class JobRegistry:
    """Jobs on the current tip, newest last."""

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._jobs: OrderedDict[str, JobEntry] = OrderedDict()
        self.current: JobEntry | None = None

    def add(self, job: Job) -> JobEntry:
        """Register a new job; a job on a new tip drops every job on the old one."""
        if self.current is not None and job.template.prevhash != self.current.job.template.prevhash:
            self._jobs.clear()
        entry = JobEntry(job)
        self._jobs[job.job_id] = entry
        while len(self._jobs) > self.keep:
            self._jobs.popitem(last=False)
        self.current = entry
        return entry

    def get(self, job_id: str) -> JobEntry | None:
        return self._jobs.get(job_id)

    def __len__(self) -> int:
        return len(self._jobs)
