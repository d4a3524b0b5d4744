#!/usr/bin/env python3
"""A lean Stratum v1 load generator: many sessions from one process, for benchmarks.

One process, non-blocking sockets on one epoll. N sessions are opened in batches (connect,
then `mining.subscribe` and `mining.authorize` as TENANT.wN in one send) and are ready once
each has its extranonce1, `mining.set_difficulty` and a `mining.notify`. Then one of:

* submit: an open-loop schedule at a total rate R shares/s for D seconds, spread evenly over
  the sessions (group g of `burst` lines goes to session g mod N at t0 + g * burst / R; with
  burst 1 every share is its own send, as an ASIC sends them). Every request has a unique
  integer id; the reply latency is measured per request by that id (send time taken when the
  send is made, receive time when epoll returns), results are counted as accepted or by error
  code. Shares are precomputed before the timed phase (`prepare_submit`): valid at the
  session's difficulty, distinct, and *not* blocks (a block changes the tip and makes every
  later share stale), which needs a share difficulty with a target near 2**256 (about
  2**-32): the pool must be configured for it.
* idle: hold the sessions (reading whatever comes) and, when armed, record the receive time
  of the next `mining.notify` on every session: the wall clock when epoll returned and, with
  kernel timestamps (SO_TIMESTAMPNS), the time the kernel queued the data on the socket, which
  does not depend on how fast this process gets round to reading 10,000 sockets.

The hot paths use bytes operations only (no json.loads per reply): a reply is
`{"id":N,"result":true,"error":null}` or `{"id":N,"result":null,"error":[CODE,...]}`.

CLI (prints one JSON summary line):

    python scripts/loadgen.py --port 3333 --sessions 1000 submit --rate 15000 --duration 8
    python scripts/loadgen.py --port 3333 --sessions 10000 idle --seconds 60 --watch-notify

Every run is bounded: connects, setup and drains have deadlines, a submit run ends after its
schedule (D seconds) plus a short drain, or earlier on too many errors or a dropped session.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import json
import resource
import select
import socket
import struct
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

#: Linux: SO_TIMESTAMPNS (the "old" 64-bit-timespec variant on x86_64) == SCM_TIMESTAMPNS.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLERR = select.EPOLLERR | select.EPOLLHUP

_NOTIFY_PREFIX = b'{"id":null,"method":"mining.notify",'
SUBSCRIBE_ID = 1
AUTHORIZE_ID = 2


class LoadError(RuntimeError):
    """The load could not be set up (connections refused, setup timed out, ...)."""


def raise_nofile() -> int:
    """Soft open-file limit up to the hard limit (every session is one fd)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC pass in a timed phase (a full pass over 10,000 sessions' objects is a
    stall of its own); what it would collect is collected afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def cpu_times() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def percentiles(values: Sequence[float], scale: float = 1000.0) -> dict[str, float | None]:
    """p50/p90/p99/p99.9/max of `values` (seconds) in ms."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "p999": None, "max": None}
    data = sorted(values)
    n = len(data)

    def at(q: float) -> float:
        return round(data[min(n - 1, int(q * n))] * scale, 3)

    return {
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": round(data[-1] * scale, 3),
    }


class Session:
    __slots__ = (
        "difficulty",
        "en2_next",
        "en2_size",
        "error",
        "extranonce1",
        "fd",
        "index",
        "job_id",
        "kernel_at",
        "notify",
        "notify_at",
        "ntime",
        "rbuf",
        "ready",
        "sock",
        "state",
        "wbuf",
        "worker",
    )

    def __init__(self, index: int, sock: socket.socket, worker: str) -> None:
        self.index = index
        self.sock = sock
        self.fd = sock.fileno()
        self.worker = worker
        self.state = "connecting"  # -> setup -> ready | failed | closed
        self.rbuf = b""
        self.wbuf = b""
        self.extranonce1 = b""
        self.en2_size = 0
        self.difficulty: float | None = None
        self.notify: list[Any] | None = None
        self.job_id = ""
        self.ntime = ""
        self.ready = False
        self.error = ""
        self.en2_next = 1
        self.notify_at = 0.0
        self.kernel_at = 0.0


class SubmitPlan:
    """Precomputed submit lines in schedule order, grouped `burst` lines per send."""

    __slots__ = ("base_id", "blobs", "burst", "duration", "owners", "rate", "shares")

    def __init__(self, rate: float, duration: float, burst: int, base_id: int) -> None:
        self.rate = rate
        self.duration = duration
        self.burst = burst
        self.base_id = base_id
        self.blobs: list[bytes] = []
        self.owners = array("i")
        self.shares = 0


class LoadGen:
    """N sessions to one Stratum port; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        tenant: str,
        *,
        kernel_timestamps: bool = False,
        agent: str = "farmpool-loadgen/1",
        password: str = "x",
    ) -> None:
        raise_nofile()
        self.host = host
        self.port = port
        self.tenant = tenant
        self.kernel_timestamps = kernel_timestamps
        self.agent = agent
        self.password = password
        self.ep = select.epoll()
        self.sessions: list[Session] = []
        self.by_fd: dict[int, Session] = {}
        self.closed = 0
        self.stray = Counter[str]()  # lines we did not expect, by kind
        self._works: dict[str, Any] = {}
        self._next_id = 1000
        self._pending = 0  # armed sessions still waiting for their notify
        self._notifies: dict[bytes, list[Any]] = {}

    # --- opening sessions ----------------------------------------------------------------------

    def open(
        self,
        count: int,
        *,
        batch: int = 500,
        timeout: float = 120.0,
        progress: Callable[[int], None] | None = None,
    ) -> dict[str, Any]:
        """Open `count` more sessions, `batch` at a time; each batch is made ready (subscribed,
        authorized, difficulty and job received) before the next starts. Returns timings."""
        started = time.monotonic()
        deadline = started + timeout
        cpu0 = cpu_times()
        while count > 0:
            n = min(batch, count)
            fresh = [self._connect() for _ in range(n)]
            self._setup_wait(fresh, deadline)
            failed = [s for s in fresh if not s.ready]
            if failed:
                reasons = Counter(s.error or s.state for s in failed)
                raise LoadError(f"{len(failed)} of {n} sessions failed: {dict(reasons)}")
            count -= n
            if progress is not None:
                progress(len(self.sessions))
        cpu1 = cpu_times()
        return {
            "sessions": len(self.sessions),
            "seconds": round(time.monotonic() - started, 3),
            "cpu_user_s": round(cpu1[0] - cpu0[0], 3),
            "cpu_sys_s": round(cpu1[1] - cpu0[1], 3),
        }

    def _connect(self) -> Session:
        for attempt in range(50):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.kernel_timestamps:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            code = sock.connect_ex((self.host, self.port))
            if code in (0, errno.EINPROGRESS):
                break
            sock.close()
            if code in (errno.EAGAIN, errno.EADDRNOTAVAIL, errno.ECONNREFUSED) and attempt < 49:
                # no local port / backlog full right now: let the server catch up
                self._pump(0.02)
                continue
            raise LoadError(f"connect to {self.host}:{self.port}: {errno.errorcode.get(code)}")
        index = len(self.sessions)
        session = Session(index, sock, f"{self.tenant}.w{index}")
        self.sessions.append(session)
        self.by_fd[session.fd] = session
        self.ep.register(session.fd, EPOLLOUT | EPOLLIN)
        return session

    def _setup_wait(self, fresh: list[Session], deadline: float) -> None:
        pending = len(fresh)
        while pending:
            if time.monotonic() > deadline:
                for s in fresh:
                    if not s.ready and not s.error:
                        s.error = f"setup timed out in state {s.state}"
                return
            self._pump(0.05)
            pending = sum(1 for s in fresh if not s.ready and s.state not in ("failed", "closed"))

    def _setup_message(self, session: Session) -> bytes:
        subscribe = {"id": SUBSCRIBE_ID, "method": "mining.subscribe", "params": [self.agent]}
        authorize = {
            "id": AUTHORIZE_ID,
            "method": "mining.authorize",
            "params": [session.worker, self.password],
        }
        return (json.dumps(subscribe) + "\n" + json.dumps(authorize) + "\n").encode()

    def _pump(self, timeout: float) -> None:
        """One epoll round for setup and idle traffic (not the submit hot loop)."""
        events = self.ep.poll(timeout)
        if not events:
            return
        wall = time.time()
        for fd, ev in events:
            s = self.by_fd.get(fd)
            if s is None:
                continue
            if s.state == "connecting":
                if ev & (EPOLLOUT | EPOLLERR):
                    self._connected(s)
                continue
            if ev & EPOLLOUT and s.wbuf:
                self._flush(s)
            if ev & (EPOLLIN | EPOLLERR):
                self._read_slow(s, wall)

    def _connected(self, s: Session) -> None:
        err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            s.error = f"connect: {errno.errorcode.get(err, err)}"
            self._close(s, "failed")
            return
        s.state = "setup"
        self.ep.modify(s.fd, EPOLLIN)
        self._write(s, self._setup_message(s))

    def _write(self, s: Session, data: bytes) -> None:
        if s.wbuf:
            s.wbuf += data
            return
        try:
            sent = s.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            s.error = f"send: {exc}"
            self._close(s, "closed")
            return
        if sent < len(data):
            s.wbuf = data[sent:]
            self.ep.modify(s.fd, EPOLLIN | EPOLLOUT)

    def _flush(self, s: Session) -> None:
        try:
            sent = s.sock.send(s.wbuf)
        except BlockingIOError:
            return
        except OSError as exc:
            s.error = f"send: {exc}"
            self._close(s, "closed")
            return
        s.wbuf = s.wbuf[sent:]
        if not s.wbuf:
            self.ep.modify(s.fd, EPOLLIN)

    def _close(self, s: Session, state: str) -> None:
        if s.state in ("closed", "failed"):
            return
        if s.ready and s.notify_at == 0.0:
            self._pending -= 1  # armed and waiting: it will not get its notify now
        s.state = state
        s.ready = False
        self.closed += 1
        with contextlib.suppress(OSError, ValueError):
            self.ep.unregister(s.fd)
        self.by_fd.pop(s.fd, None)
        s.sock.close()

    def _recv(self, s: Session) -> tuple[bytes, float] | None:
        """Data from the socket (and its kernel receive time when enabled); None: nothing."""
        kernel_at = 0.0
        try:
            if self.kernel_timestamps:
                data, ancillary, _, _ = s.sock.recvmsg(262144, _CMSG_SPACE)
                for level, kind, raw in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = _TIMESPEC.unpack_from(raw)
                        kernel_at = sec + nsec * 1e-9
            else:
                data = s.sock.recv(262144)
        except BlockingIOError:
            return None
        except OSError as exc:
            s.error = f"recv: {exc}"
            self._close(s, "closed")
            return None
        if not data:
            if not s.error:
                s.error = "closed by the server"
            self._close(s, "closed")
            return None
        return data, kernel_at

    def _read_slow(self, s: Session, wall: float) -> None:
        """Setup and idle: parse every line as JSON (nothing here is on a hot path)."""
        got = self._recv(s)
        if got is None:
            return
        data, kernel_at = got
        if s.rbuf:
            data = s.rbuf + data
        end = data.rfind(b"\n")
        if end < 0:
            s.rbuf = data
            return
        s.rbuf = data[end + 1 :]
        for line in data[:end].split(b"\n"):
            if line.strip():
                self._line(s, line, wall, kernel_at)

    def _line(self, s: Session, line: bytes, wall: float, kernel_at: float) -> None:
        if line.startswith(_NOTIFY_PREFIX):
            # The same bytes go to every session: parse each distinct notify once.
            params = self._notifies.get(line)
            if params is None:
                if len(self._notifies) > 64:
                    self._notifies.clear()
                params = self._notifies[line] = json.loads(line).get("params") or []
            self._notify(s, params, wall, kernel_at)
            self._check_ready(s)
            return
        try:
            message = json.loads(line)
        except ValueError:
            self.stray["unparsable"] += 1
            return
        method = message.get("method")
        if method == "mining.notify":
            self._notify(s, message.get("params") or [], wall, kernel_at)
        elif method == "mining.set_difficulty":
            s.difficulty = float(message["params"][0])
        elif method is not None:
            self.stray[str(method)] += 1
        elif message.get("id") == SUBSCRIBE_ID and s.state == "setup":
            result = message.get("result")
            if not isinstance(result, list) or len(result) < 3:
                s.error = f"subscribe: {message.get('error')}"
                self._close(s, "failed")
                return
            s.extranonce1 = bytes.fromhex(result[1])
            s.en2_size = int(result[2])
        elif message.get("id") == AUTHORIZE_ID and s.state == "setup":
            if message.get("result") is not True:
                s.error = f"authorize: {message.get('error')}"
                self._close(s, "failed")
                return
            s.state = "authorized"
        else:
            self.stray["reply"] += 1
        self._check_ready(s)

    def _notify(self, s: Session, params: list[Any], wall: float, kernel_at: float) -> None:
        if len(params) < 9:
            self.stray["bad notify"] += 1
            return
        if s.notify_at == 0.0 and s.ready and params[8] is True:
            s.notify_at = wall
            s.kernel_at = kernel_at
            self._pending -= 1
        s.notify = params
        s.job_id = str(params[0])
        s.ntime = str(params[7])

    def _check_ready(self, s: Session) -> None:
        if (
            not s.ready
            and s.state == "authorized"
            and s.extranonce1
            and s.difficulty is not None
            and s.notify is not None
        ):
            s.ready = True
            s.notify_at = -1.0  # not armed

    # --- idle mode ----------------------------------------------------------------------------

    def hold(self, seconds: float) -> None:
        """Keep the sessions open for `seconds`, reading whatever the server sends."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._pump(min(left, 0.25))

    def arm_notify(self) -> None:
        """Record the receive time of the next clean `mining.notify` on every session."""
        self.hold(0)  # take in anything already queued first
        self._pending = 0
        for s in self.sessions:
            if s.ready:
                s.notify_at = 0.0
                s.kernel_at = 0.0
                self._pending += 1

    def wait_notify(self, timeout: float) -> dict[str, Any]:
        """Pump until every open session has its armed notify (or `timeout`); summary."""
        started = time.monotonic()
        deadline = started + timeout
        cpu0 = cpu_times()
        with _gc_paused():
            while time.monotonic() < deadline and self._pending > 0:
                self._pump(0.05)
        live = [s for s in self.sessions if s.state not in ("closed", "failed")]
        cpu1 = cpu_times()
        got = [s for s in live if s.notify_at > 0]
        walls = [s.notify_at for s in got]
        kernels = [s.kernel_at for s in got if s.kernel_at > 0]
        return {
            "sessions": len(live),
            "received": len(got),
            "first_wall": min(walls) if walls else None,
            "last_wall": max(walls) if walls else None,
            "first_kernel": min(kernels) if kernels else None,
            "last_kernel": max(kernels) if kernels else None,
            "median_kernel": sorted(kernels)[len(kernels) // 2] if kernels else None,
            "wait_s": round(time.monotonic() - started, 3),
            "cpu_user_s": round(cpu1[0] - cpu0[0], 3),
            "cpu_sys_s": round(cpu1[1] - cpu0[1], 3),
        }

    # --- submit mode --------------------------------------------------------------------------

    def _work(self, s: Session) -> Any:
        """The job's HeaderWork (as pool/sharecheck.py builds it), one per job."""
        from pool.hashing import HeaderWork

        assert s.notify is not None
        work = self._works.get(s.job_id)
        if work is None:
            p = s.notify
            work = HeaderWork.from_notify(p)
            self._works[s.job_id] = work
        return work

    def prepare_submit(self, rate: float, duration: float, burst: int = 1) -> SubmitPlan:
        """Precompute the run: rate * duration distinct shares that meet each session's
        difficulty and are not blocks, as request lines with unique ids, in schedule order."""
        from pool.hashing import difficulty_to_target

        live = [s for s in self.sessions if s.ready]
        if not live:
            raise LoadError("no ready sessions")
        plan = SubmitPlan(rate, duration, burst, self._next_id)
        total = int(rate * duration)
        plan.shares = total
        self._next_id += total + 1
        groups = (total + burst - 1) // burst
        per_session: dict[int, tuple[Any, int, int, bytes, bytes, bytes]] = {}
        for s in live:
            work = self._work(s)
            assert s.difficulty is not None
            target = difficulty_to_target(s.difficulty)
            if target - work.network_target < 1 << 254:
                raise LoadError(
                    f"session difficulty {s.difficulty:g} is too high: a share that is not a "
                    "block would take too many hashes to find (configure the port's difficulty "
                    "near 2**-32)"
                )
            per_session[s.index] = (
                work,
                target,
                work.network_target,
                (
                    b'"method":"mining.submit","params":["%s","%s","'
                    % (s.worker.encode(), s.job_id.encode())
                ),
                s.ntime.encode(),
                s.extranonce1,
            )
        rid = plan.base_id
        n_live = len(live)
        for g in range(groups):
            s = live[g % n_live]
            work, target, net, head, ntime_b, en1 = per_session[s.index]
            hash_share = work.hash_share
            version = work.version
            ntime = int(ntime_b, 16)
            lines = []
            for _ in range(min(burst, total - g * burst)):
                nonce = 0
                while True:
                    en2 = s.en2_next
                    s.en2_next += 1
                    en2_b = en2.to_bytes(s.en2_size, "big")
                    _, value = hash_share(en1, en2_b, ntime, nonce, version)
                    if net < value <= target:
                        break
                lines.append(
                    b'{"id":%d,%s%s","%s","%08x"]}\n'
                    % (rid, head, en2_b.hex().encode(), ntime_b, nonce)
                )
                rid += 1
            plan.blobs.append(b"".join(lines))
            plan.owners.append(s.index)
        return plan

    def run_submit(
        self,
        plan: SubmitPlan,
        *,
        max_errors: int = 1000,
        drain_s: float = 3.0,
        timeline_s: float = 0.0,
    ) -> dict[str, Any]:
        """Send the plan on its schedule, collect every reply; a JSON-able summary (with
        `timeline_s`, also the reply latency per slice of that many seconds of send time)."""
        with _gc_paused():
            return self._run_submit(plan, max_errors, drain_s, timeline_s)

    def _run_submit(
        self, plan: SubmitPlan, max_errors: int, drain_s: float, timeline_s: float
    ) -> dict[str, Any]:
        sessions = self.sessions
        blobs = plan.blobs
        owners = plan.owners
        ngroups = len(blobs)
        plan_shares = plan.shares
        burst = plan.burst
        base = plan.base_id
        interval = burst / plan.rate
        sent_at = array("d", bytes(8 * ngroups))
        latency = array("d", [-1.0]) * plan.shares  # by request; -1: no reply (yet)
        errors: Counter[int] = Counter()
        accepted = 0
        replies = 0
        stray = 0
        by_fd = self.by_fd
        poll = self.ep.poll
        perf = time.perf_counter
        max_lag = 0.0
        lag_total = 0.0
        aborted = ""
        blocked = 0
        closed_before = self.closed

        cpu0 = cpu_times()
        t0 = perf() + 0.02
        g = 0
        end_schedule = t0 + ngroups * interval
        drain_until = end_schedule + drain_s
        lines_sent = 0
        last_send = t0
        while True:
            now = perf()
            if g < ngroups and now >= t0:
                due = int((now - t0) / interval) + 1
                if due > ngroups:
                    due = ngroups
                while g < due:
                    s = sessions[owners[g]]
                    blob = blobs[g]
                    sent_at[g] = now
                    lag = now - (t0 + g * interval)
                    lag_total += lag
                    if lag > max_lag:
                        max_lag = lag
                    if s.wbuf:
                        s.wbuf += blob
                        blocked += 1
                    else:
                        try:
                            n = s.sock.send(blob)
                        except BlockingIOError:
                            n = 0
                        except OSError as exc:
                            aborted = f"send failed: {exc}"
                            break
                        if n < len(blob):
                            s.wbuf = blob[n:]
                            blocked += 1
                            self.ep.modify(s.fd, EPOLLIN | EPOLLOUT)
                    g += 1
                last_send = now
                lines_sent = min(g * burst, plan.shares)
            if aborted:
                break
            if g >= ngroups:
                if replies >= lines_sent or now > drain_until:
                    break
                timeout = 0.05
            else:
                timeout = t0 + g * interval - perf()
                if timeout < 0:
                    timeout = 0
            events = poll(timeout)
            if not events:
                continue
            rnow = perf()
            for fd, ev in events:
                s = by_fd.get(fd)
                if s is None:
                    continue
                if ev & EPOLLOUT and s.wbuf:
                    self._flush(s)
                if not ev & (EPOLLIN | EPOLLERR):
                    continue
                try:
                    data = s.sock.recv(262144)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    s.error = f"recv: {exc}"
                    data = b""
                if not data:
                    self._close(s, "closed")
                    aborted = f"session {s.worker} closed: {s.error or 'by the server'}"
                    break
                if s.rbuf:
                    data = s.rbuf + data
                end = data.rfind(b"\n")
                if end < 0:
                    s.rbuf = data
                    continue
                s.rbuf = data[end + 1 :]
                for line in data[:end].split(b"\n"):
                    # {"id":N,"result":true,"error":null}
                    comma = line.find(b",", 6)
                    try:
                        rid = int(line[6:comma])
                    except ValueError:  # "id":null: a notify or set_difficulty
                        stray += 1
                        continue
                    k = rid - base
                    if k < 0 or k >= plan_shares:
                        stray += 1
                        continue
                    latency[k] = rnow - sent_at[k // burst]
                    replies += 1
                    if line.startswith(b'"result":true', comma + 1):
                        accepted += 1
                    else:
                        i = line.find(b'"error":[', comma)
                        j = line.find(b",", i + 9)
                        try:
                            errors[int(line[i + 9 : j])] += 1
                        except ValueError:
                            errors[-1] += 1
                if sum(errors.values()) > max_errors:
                    aborted = f"more than {max_errors} errors: {dict(errors)}"
            if aborted:
                break
        finished = perf()
        cpu1 = cpu_times()
        wall = finished - t0
        send_span = max(last_send - t0, interval)
        user = cpu1[0] - cpu0[0]
        system = cpu1[1] - cpu0[1]
        sent = min(g * burst, plan.shares)
        latencies = [x for x in latency if x >= 0]
        summary = {
            "mode": "submit",
            "sessions": sum(1 for s in sessions if s.ready),
            "target_rate": plan.rate,
            "duration_s": plan.duration,
            "burst": burst,
            "sent": sent,
            "replies": replies,
            "accepted": accepted,
            "errors": {str(code): count for code, count in sorted(errors.items())},
            "missing": sent - replies,
            "accepted_pct": round(100.0 * accepted / sent, 4) if sent else 0.0,
            "send_rate": round(sent / (send_span + interval), 1),
            "accepted_rate": round(accepted / (send_span + interval), 1),
            "latency_ms": percentiles(latencies),
            "send_lag_ms": {
                "mean": round(1000 * lag_total / max(g, 1), 3),
                "max": round(1000 * max_lag, 3),
            },
            "blocked_sends": blocked,
            "stray_lines": stray,
            "closed_sessions": self.closed - closed_before,
            "wall_s": round(wall, 3),
            "client_cpu": {
                "user_s": round(user, 3),
                "sys_s": round(system, 3),
                "pct": round(100.0 * (user + system) / wall, 1) if wall > 0 else 0.0,
            },
            "aborted": aborted or None,
        }
        if timeline_s:
            summary["timeline"] = _timeline(sent_at, latency, burst, t0, timeline_s)
        return summary

    # --- the end --------------------------------------------------------------------------------

    def close(self) -> None:
        for s in self.sessions:
            if s.state not in ("closed", "failed"):
                self._close(s, "closed")
        self.ep.close()

    def __enter__(self) -> LoadGen:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _timeline(
    sent_at: array[float], latency: array[float], burst: int, t0: float, step: float
) -> list[dict[str, Any]]:
    """Per `step` seconds of send time: shares sent, p50/p99/max reply latency (ms)."""
    buckets: dict[int, list[float]] = {}
    for k, lat in enumerate(latency):
        sent = sent_at[k // burst]
        if sent <= 0:
            break
        buckets.setdefault(int((sent - t0) / step), []).append(lat)
    rows = []
    for b in sorted(buckets):
        got = [x for x in buckets[b] if x >= 0]
        p = percentiles(got)
        rows.append(
            {
                "t": round(b * step, 3),
                "sent": len(buckets[b]),
                "p50": p["p50"],
                "p99": p["p99"],
                "max": p["max"],
            }
        )
    return rows


# --- CLI ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tenant", default="acme", help="authorize as TENANT.wN")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=500, help="sessions opened at a time")
    parser.add_argument("--setup-timeout", type=float, default=120.0)
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("submit", help="open-loop shares at a total rate")
    p.add_argument("--rate", type=float, required=True, help="shares/s over all sessions")
    p.add_argument("--duration", type=float, default=8.0, help="seconds (at most 600)")
    p.add_argument("--burst", type=int, default=1, help="lines per send per session")
    p.add_argument("--max-errors", type=int, default=1000)
    p.add_argument("--timeline", type=float, default=0.0, help="latency per slice of S s")
    p = sub.add_parser("idle", help="hold sessions; optionally time the next notify")
    p.add_argument("--seconds", type=float, default=30.0, help="how long (at most 3600)")
    p.add_argument("--watch-notify", action="store_true", help="time the next clean notify")
    args = parser.parse_args(argv)
    if args.sessions < 1:
        parser.error("--sessions must be at least 1")
    limit = raise_nofile()
    if args.sessions + 64 > limit:
        parser.error(f"--sessions {args.sessions} needs more open files than the limit {limit}")
    with LoadGen(args.host, args.port, args.tenant, kernel_timestamps=args.mode == "idle") as gen:
        opened = gen.open(args.sessions, batch=args.batch, timeout=args.setup_timeout)
        print(f"opened: {json.dumps(opened)}", file=sys.stderr, flush=True)
        if args.mode == "submit":
            if not 0 < args.duration <= 600 or args.rate <= 0 or args.burst < 1:
                parser.error("--duration must be in (0, 600], --rate > 0, --burst >= 1")
            t = time.monotonic()
            plan = gen.prepare_submit(args.rate, args.duration, args.burst)
            print(
                f"precomputed {plan.shares} shares in {time.monotonic() - t:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            summary = gen.run_submit(plan, max_errors=args.max_errors, timeline_s=args.timeline)
        else:
            if not 0 < args.seconds <= 3600:
                parser.error("--seconds must be in (0, 3600]")
            if args.watch_notify:
                gen.arm_notify()
                summary = {"mode": "idle", **gen.wait_notify(args.seconds)}
            else:
                gen.hold(args.seconds)
                summary = {"mode": "idle", "sessions": len(gen.sessions), "closed": gen.closed}
        summary["setup"] = opened
        print(json.dumps(summary), flush=True)
    if summary.get("aborted") or summary.get("received", summary["sessions"]) < summary["sessions"]:
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (LoadError, OSError) as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        sys.exit(1)
