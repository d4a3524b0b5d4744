"""Work source: learns of new blocks and turns templates into jobs, on the reactor.

Three ways to learn that the tip moved, used together: ZMQ `hashblock` (when configured),
getblocktemplate long-poll (when the node offers a longpollid), and a cheap
`getbestblockhash` poll (default every 500 ms) that catches whatever the others miss. A new
tip gives a clean job; the refresh timer (default 30 s) gives a job that is not clean, with
the template's newer transactions and time. Node calls run off the reactor thread (the
node's thread pool, or a daemon thread for the blocking long-poll and ZMQ receive loops);
only their results come back to the reactor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task

from pool.chain.job import Job, JobFactory
from pool.chain.rpc import AsyncNode, NodeError, backoff_delays
from pool.chain.template import BlockTemplate, fetch_template
from pool.config import NodeSettings

log = logging.getLogger(__name__)

JobListener = Callable[[Job], None]

#: How long one long-poll request may wait before it is sent again.
LONGPOLL_TIMEOUT_S = 90.0


class WorkSource:
    """Keeps `current` (the newest job) and tells listeners about every new one."""

    def __init__(
        self,
        node: AsyncNode,
        factory: JobFactory,
        settings: NodeSettings,
        segwit: bool,
        reactor: Any,
    ) -> None:
        self.node = node
        self.factory = factory
        self.settings = settings
        self.segwit = segwit
        self.reactor = reactor
        self.current: Job | None = None
        self.listeners: list[JobListener] = []
        self.tip_detected_at: float = 0.0  # wall clock, comparable across processes
        self._fetching = False
        self._again: str | None = None
        self._running = False
        self._poller: task.LoopingCall | None = None
        self._refresh: Any = None  # IDelayedCall
        self._threads: list[threading.Thread] = []
        self._stop_event = threading.Event()
        self._retry_delay = backoff_delays(0.25, 5.0)
        self._poll_failing = False
        #: Why the node did not answer the last template fetch or tip poll (None: it did).
        self.node_error: str | None = None
        self.first_job: defer.Deferred[Job] = defer.Deferred()

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> defer.Deferred[Job]:
        """Fetch the first template and start watching; fires with the first job."""
        self._running = True
        self._stop_event.clear()
        self.hint("start")
        self._poller = task.LoopingCall(self._poll_tip)
        self._poller.clock = self.reactor
        self._poller.start(self.settings.poll_interval_ms / 1000.0, now=False).addErrback(
            lambda f: log.error("tip poller stopped: %s", f.getErrorMessage())
        )
        if self.settings.zmq_hashblock:
            self._spawn("zmq-hashblock", self._zmq_loop)
        return self.first_job

    def stop(self) -> None:
        self._running = False
        self._stop_event.set()
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        if self._refresh is not None and self._refresh.active():
            self._refresh.cancel()

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # --- learning of blocks ----------------------------------------------------------------

    def hint(self, reason: str) -> None:
        """Something says the tip may have moved (or a refresh is due): fetch a template."""
        if not self._running:
            return
        if reason in ("zmq", "poll", "longpoll", "block") and not self.tip_detected_at:
            self.tip_detected_at = time.time()
        if self._fetching:
            # One fetch at a time; remember that another is wanted (a tip hint wins).
            if self._again is None or reason != "refresh":
                self._again = reason
            return
        self._fetching = True
        d = self.node.run(fetch_template, self.node.rpc, self.segwit)
        d.addCallbacks(self._got_template, self._fetch_failed, callbackArgs=(reason,))
        d.addBoth(self._fetch_done)

    def _fetch_done(self, _: object) -> None:
        self._fetching = False
        again, self._again = self._again, None
        if again is not None:
            self.hint(again)

    def _fetch_failed(self, failure: Any) -> None:
        self.node_error = f"getblocktemplate: {failure.getErrorMessage()}"
        if failure.check(NodeError) is None:
            log.error("template fetch failed", exc_info=failure.value)
        delay = self._retry_delay()
        log.warning(
            "getblocktemplate failed: %s; again in %.2f s", failure.getErrorMessage(), delay
        )
        if self._running:
            self.reactor.callLater(delay, self.hint, "retry")

    def _poll_tip(self) -> defer.Deferred[None] | None:
        if self._fetching or self.current is None:
            return None
        known = self.current.prevhash_hex
        d = self.node.call("getbestblockhash")

        def compare(best: Any) -> None:
            self.node_error = None
            if self._poll_failing:
                self._poll_failing = False
                log.warning("node answers tip polls again")
            # Only if no job arrived meanwhile: that job may already be on `best`.
            current = self.current
            if isinstance(best, str) and best != known and current is not None:
                unchanged = current.prevhash_hex == known
                if unchanged:
                    self.hint("poll")

        d.addCallbacks(compare, self._poll_failed)
        return None

    def _poll_failed(self, failure: Any) -> None:
        """Warn once when the node stops answering polls (and once when it is back)."""
        self.node_error = f"getbestblockhash: {failure.getErrorMessage()}"
        if not self._poll_failing:
            log.warning("tip poll failed: %s", failure.getErrorMessage())
        else:
            log.debug("tip poll failed: %s", failure.getErrorMessage())
        self._poll_failing = True

    def _longpoll_loop(self, longpollid: str) -> None:
        """Daemon thread: one long-poll at a time; a changed tip becomes a hint."""
        rpc = self.node.rpc
        delays = backoff_delays(0.5, 10.0)
        lpid: str | None = longpollid
        while not self._stop_event.is_set() and lpid:
            try:
                template = fetch_template(rpc, self.segwit, lpid, timeout_s=LONGPOLL_TIMEOUT_S)
            except NodeError as exc:
                if self._stop_event.wait(delays()):
                    return
                log.debug("long-poll: %s", exc)
                continue
            delays = backoff_delays(0.5, 10.0)
            lpid = template.longpollid
            self.reactor.callFromThread(self._longpoll_answer, template)

    def _longpoll_answer(self, template: BlockTemplate) -> None:
        if self.current is not None and template.prevhash != self.current.template.prevhash:
            self.hint("longpoll")

    def _zmq_loop(self) -> None:
        """Daemon thread: receive ZMQ hashblock messages and turn each into a hint."""
        import zmq

        url = self.settings.zmq_hashblock
        context: Any = zmq.Context.instance()
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.SUBSCRIBE, b"hashblock")
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(url)
        log.info("listening for ZMQ hashblock on %s", url)
        try:
            while not self._stop_event.is_set():
                if sock.poll(250):
                    parts = sock.recv_multipart()
                    if parts and parts[0] == b"hashblock":
                        self.reactor.callFromThread(self.hint, "zmq")
        finally:
            sock.close()

    # --- templates to jobs ---------------------------------------------------------------

    def _got_template(self, template: BlockTemplate, reason: str) -> None:
        self.node_error = None
        self._retry_delay = backoff_delays(0.25, 5.0)
        previous = self.current
        new_tip = previous is None or template.prevhash != previous.template.prevhash
        if not new_tip and reason not in ("refresh", "start"):
            self.tip_detected_at = 0.0  # a hint that turned out to be nothing new
            return
        job = self.factory.build(template, clean=new_tip)
        self.current = job
        if new_tip:
            detected = self.tip_detected_at or time.time()
            job.tip_detected_at = detected
            if previous is not None:
                log.info(
                    "new block: height %d, %s (job %.1f ms after detection)",
                    template.height - 1,
                    template.prevhash_hex,
                    (time.time() - detected) * 1000,
                )
        self.tip_detected_at = 0.0
        self._schedule_refresh()
        for listener in list(self.listeners):
            try:
                listener(job)
            except Exception:
                log.exception("job listener %r failed", listener)
        if previous is None:
            if self.settings.longpoll and template.longpollid:
                self._spawn("gbt-longpoll", lambda: self._longpoll_loop(template.longpollid or ""))
            self.first_job.callback(job)

    def _schedule_refresh(self) -> None:
        if self._refresh is not None and self._refresh.active():
            self._refresh.cancel()
        if self._running:
            self._refresh = self.reactor.callLater(
                self.settings.refresh_interval_s, self.hint, "refresh"
            )
