"""The SMB listener: impacket in a supervised child process, its log read incrementally.

impacket's ``SimpleSMBServer`` is threaded and blocking, so it runs in its
own process (:mod:`interactsh.listeners.smb_worker`) that writes impacket's
log lines to a file. This module starts that process, restarts it with a
growing delay when it dies, stops it on close, and reads the log as it grows:

* every new non-empty line adds one to the ``smb`` counter;
* a line containing ``INFO: `` adds an ``extra`` record
  ``{"protocol":"smb","raw-request":<text after the first "INFO: ">}``
  with empty ids and an empty remote address, as upstream records it.

Upstream re-reads the whole log every 5 seconds and keeps every distinct
line it has seen in memory for the life of the process. Here the reader
remembers a file offset, keeps at most one partial line, and the worker
rotates the log at ``smb_log_max_bytes``, so memory and disk stay bounded.
Unlike upstream, repeated identical lines are counted and recorded each time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import interactsh
from interactsh.config import ServerConfig
from interactsh.errors import InteractshError
from interactsh.interaction import build_record
from interactsh.listeners.smb_logtail import LogTail
from interactsh.listeners.smb_worker import READY_MARKER
from interactsh.recording import Recorder

log = logging.getLogger("interactsh.smb")

INFO_MARKER = "INFO: "
FIRST_RESTART_DELAY = 1.0
# A worker that ran this long before dying is restarted after the first delay again.
STABLE_RUN_SECONDS = 60.0
STOP_TIMEOUT = 5.0
# Worker output lines kept to explain a failed start.
OUTPUT_LINES_KEPT = 20
MAX_OUTPUT_LINE = 4096


class SmbWorkerError(OSError):
    """The SMB worker process could not start listening."""


class SmbListener:
    """Supervises one SMB worker process and turns its log into records."""

    def __init__(self, config: ServerConfig, recorder: Recorder) -> None:
        self.config = config
        self.recorder = recorder
        self.port = config.smb_port
        self.restarts = 0
        self.directory = Path(tempfile.mkdtemp(prefix="interactsh-smb-"))
        self.log_path = self.directory / "smb.log"
        self.tail = LogTail(self.log_path, max_line_bytes=config.max_request_size)
        self._process: asyncio.subprocess.Process | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=OUTPUT_LINES_KEPT)
        self._output_task: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def worker_pid(self) -> int | None:
        """Process id of the running worker, or ``None`` between a crash and its restart."""
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        """Start the worker and wait until it listens; raise ``OSError`` when it cannot."""
        self.port = await self._spawn(self.config.smb_port)
        self._supervisor = asyncio.create_task(self._supervise(), name="smb-supervisor")
        self._poller = asyncio.create_task(self._poll_log(), name="smb-log-reader")

    async def close(self) -> None:
        """Stop the worker, record its last log lines and remove the log directory."""
        if self._closed:
            return
        self._closed = True
        for task in (self._supervisor, self._poller):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._stop_worker()
        self._drain_log()
        self.tail.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # The worker process

    def _worker_command(self, port: int) -> list[str]:
        config = self.config
        return [
            sys.executable,
            "-m",
            "interactsh.listeners.smb_worker",
            str(self.log_path),
            str(port),
            config.listen_ip,
            "--max-connections",
            str(config.smb_max_connections),
            "--log-max-bytes",
            str(config.smb_log_max_bytes),
        ]

    async def _spawn(self, port: int) -> int:
        """Start one worker on ``port`` and return the port it listens on."""
        config = self.config
        self._output.clear()
        # A new session keeps a terminal's Ctrl-C away from the worker: the
        # server stops it itself, and the worker also exits when its
        # standard input closes, which happens when the server dies.
        process = await asyncio.create_subprocess_exec(
            *self._worker_command(port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=_worker_environment(),
            start_new_session=True,
            limit=MAX_OUTPUT_LINE,
        )
        self._process = process

        try:
            bound = await asyncio.wait_for(self._wait_until_listening(process), self.config.smb_start_timeout)
        except TimeoutError:
            await self._stop_worker()
            raise SmbWorkerError(
                f"the SMB worker did not listen on {config.listen_ip} port {port} "
                f"within {config.smb_start_timeout:g} s{self._output_tail()}"
            ) from None
        except SmbWorkerError:
            await self._stop_worker()
            raise
        self._output_task = asyncio.create_task(self._read_output(process), name="smb-worker-output")
        log.debug("SMB worker %d listening on %s port %d", process.pid, config.listen_ip, bound)
        return bound

    async def _wait_until_listening(self, process: asyncio.subprocess.Process) -> int:
        assert process.stdout is not None
        while True:
            line = await _read_output_line(process.stdout)
            if line is None:
                code = await process.wait()
                raise SmbWorkerError(
                    f"the SMB worker exited with code {code} before listening on "
                    f"{self.config.listen_ip} port {self.port}{self._output_tail()}"
                )
            marker, _, port = line.partition(" ")
            if marker == READY_MARKER and port.isdigit():
                return int(port)
            self._output.append(line)
            log.debug("SMB worker output: %s", line)

    async def _read_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while (line := await _read_output_line(process.stdout)) is not None:
            self._output.append(line)
            log.debug("SMB worker output: %s", line)

    async def _stop_worker(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.warning("SMB worker %d did not stop within %g s; killing it", process.pid, STOP_TIMEOUT)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._output_task is not None:
            await asyncio.gather(self._output_task, return_exceptions=True)
            self._output_task = None

    async def _supervise(self) -> None:
        """Restart the worker whenever it exits, waiting longer after each quick failure."""
        delay = FIRST_RESTART_DELAY
        started = time.monotonic()
        while True:
            process = self._process
            if process is not None:
                code = await process.wait()
                if self._output_task is not None:
                    await asyncio.gather(self._output_task, return_exceptions=True)
                    self._output_task = None
                log.warning("SMB worker exited with code %s%s", code, self._output_tail())
                self._process = None
            if time.monotonic() - started >= STABLE_RUN_SECONDS:
                delay = FIRST_RESTART_DELAY
            log.info("restarting the SMB worker in %g s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.smb_restart_max_delay)
            started = time.monotonic()
            try:
                await self._spawn(self.port)
            except OSError as error:
                log.warning("could not restart the SMB worker: %s", error)
            else:
                self.restarts += 1

    def _output_tail(self) -> str:
        if not self._output:
            return ""
        return ": " + " | ".join(self._output)

    # The log

    async def _poll_log(self) -> None:
        while True:
            more = self._drain_log()
            await asyncio.sleep(0 if more else self.config.smb_poll_interval)

    def _drain_log(self) -> bool:
        """Handle the lines written since the last call; ``True`` when more are waiting."""
        try:
            lines, more = self.tail.read_lines()
        except OSError as error:
            log.warning("could not read the SMB log %s: %s", self.log_path, error)
            return False
        for line in lines:
            self._handle_line(line.decode("utf-8", "replace"))
        return more

    def _handle_line(self, text: str) -> None:
        if not text:
            return
        self.recorder.counters.smb += 1
        index = text.find(INFO_MARKER)
        if index < 0:
            return
        record = build_record("smb", "", "", "", raw_request=text[index + len(INFO_MARKER) :])
        try:
            self.recorder.record_shared("extra", record)
        except InteractshError as error:
            log.warning("could not store an SMB log line: %s", error)


async def start_smb(config: ServerConfig, recorder: Recorder) -> SmbListener:
    """Start the SMB worker on ``config.smb_port`` and follow its log."""
    listener = SmbListener(config, recorder)
    try:
        await listener.start()
    except BaseException:
        await listener.close()
        raise
    return listener


async def _read_output_line(stream: asyncio.StreamReader) -> str | None:
    """Return the next output line, cut to ``MAX_OUTPUT_LINE``, or ``None`` at the end."""
    try:
        line = await stream.readline()
    except ValueError:
        # A line over the reader's limit: skip what is buffered and go on.
        line = await stream.read(MAX_OUTPUT_LINE)
    if not line:
        return None
    return line.decode("utf-8", "replace").rstrip("\r\n")[:MAX_OUTPUT_LINE]


def _worker_environment() -> dict[str, str]:
    """Return the environment with this package importable, wherever it was loaded from."""
    package_root = str(Path(interactsh.__file__).resolve().parent.parent)
    environment = dict(os.environ)
    existing = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = package_root + (os.pathsep + existing if existing else "")
    return environment
