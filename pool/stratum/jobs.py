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

    def __init__(self, job: Job, seen: set[int] | None = None) -> None:
        self.job = job
        # Header hashes accepted for this job's work, by their low 64 bits (a false duplicate
        # needs a 64-bit collision: ~2e-13 per share with 4 million remembered). Jobs whose
        # hashable work is identical (a refresh of an unchanged template) share one set: the
        # same header under another job id is still a duplicate.
        self.seen: set[int] = set() if seen is None else seen
        self.notify_clean = encode_notify(job, clean=True)
        self.notify_update = encode_notify(job, clean=False)

    def notify(self, clean: bool) -> bytes:
        return self.notify_clean if clean else self.notify_update


def encode_notify(job: Job, clean: bool) -> bytes:
    """The `mining.notify` line for a job, as bytes (the same bytes go to every session)."""
    message = {"id": None, "method": "mining.notify", "params": job.notify_params(clean)}
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def work_identity(job: Job) -> tuple[bytes, bytes, tuple[bytes, ...], int, bytes, int]:
    """What decides the header a submit hashes to, apart from the miner's fields."""
    w = job.work
    return (w.coinb1, w.coinb2, w.branch, w.version, w.prevhash, w.nbits)


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
        identity = work_identity(job)
        same = next((e for e in self._jobs.values() if work_identity(e.job) == identity), None)
        entry = JobEntry(job, None if same is None else same.seen)
        self._jobs[job.job_id] = entry
        while len(self._jobs) > self.keep:
            self._jobs.popitem(last=False)
        self.current = entry
        return entry

    def get(self, job_id: str) -> JobEntry | None:
        return self._jobs.get(job_id)

    def __len__(self) -> int:
        return len(self._jobs)
