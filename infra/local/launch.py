"""How the local Batch runner starts a child: exec a command, or fork a warm one.

Both give a :class:`ChildProcess`: a real process with its own pid, awaited for
its exit status (``-N`` when killed by signal ``N``, as asyncio reports it),
killable and terminable. Warm children come from :mod:`infra.local.zygote` and
are used for job definitions whose command is ``python -m MODULE`` with a
preloaded ``MODULE``; everything else is executed as given.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
from typing import Protocol

from infra.local.zygote import ENV_ROOM_BYTES, ENV_ROOM_VARIABLE

log = logging.getLogger("byom.local.batch")

_PR_SET_CHILD_SUBREAPER = 36


class ChildProcess(Protocol):
    pid: int

    async def wait(self) -> int: ...

    def kill(self) -> None: ...

    def terminate(self) -> None: ...


class ExecLauncher:
    async def start(self, command: list[str], environment: dict[str, str]) -> ChildProcess:
        process = await asyncio.create_subprocess_exec(*command, env=environment)
        return process


class ForkedChild:
    """A child forked by the zygote and re-parented to this process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        # A pidfd becomes readable when the process exits; it is also safe
        # against pid reuse, which cannot happen before we reap it anyway.
        self._pidfd = os.pidfd_open(pid)

    async def wait(self) -> int:
        if self.returncode is not None:
            return self.returncode
        loop = asyncio.get_running_loop()
        exited = loop.create_future()
        loop.add_reader(self._pidfd, _settle, exited)
        try:
            await exited
        finally:
            loop.remove_reader(self._pidfd)
        # The pidfd is readable: the child has exited, so this does not block.
        _, status = os.waitpid(self.pid, os.WNOHANG)  # noqa: ASYNC222
        os.close(self._pidfd)
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def _signal(self, signum: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def warm_starts_supported() -> bool:
    return sys.platform == "linux" and hasattr(os, "pidfd_open")


def become_subreaper() -> None:
    """Orphaned descendants (the zygote's grandchildren) become our children."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


class ZygoteLauncher:
    """Forks ``python -m MODULE`` children from a process that imported MODULE once."""

    def __init__(self, modules: list[str], fallback: ExecLauncher) -> None:
        self.modules = modules
        self.fallback = fallback
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    def handles(self, command: list[str]) -> bool:
        return (
            len(command) >= 3
            and os.path.realpath(command[0]) == os.path.realpath(sys.executable)
            and command[1] == "-m"
            and command[2] in self.modules
        )

    async def open(self) -> None:
        become_subreaper()
        ours, theirs = socket.socketpair()
        environment = dict(os.environ) | {ENV_ROOM_VARIABLE: "x" * ENV_ROOM_BYTES}
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "infra.local.zygote",
            "--fd", str(theirs.fileno()), *self.modules,
            pass_fds=(theirs.fileno(),), env=environment,
        )  # fmt: skip
        theirs.close()
        self._reader, self._writer = await asyncio.open_connection(sock=ours)
        log.info("zygote %s preloading %s", self._process.pid, ", ".join(self.modules))

    async def start(self, command: list[str], environment: dict[str, str]) -> ChildProcess:
        if not self.handles(command) or self._reader is None or self._writer is None:
            return await self.fallback.start(command, environment)
        async with self._lock:
            try:
                request = {"command": command, "environment": environment}
                self._writer.write(json.dumps(request).encode() + b"\n")
                await self._writer.drain()
                reply = json.loads(await self._reader.readline() or b"{}")
            except (ConnectionError, ValueError) as exc:
                reply = {"error": str(exc) or "zygote gone"}
            if "pid" not in reply:
                # A lost zygote costs speed, never a child: start it the slow way.
                log.warning("zygote failed (%s); executing %s", reply.get("error"), command)
                self._reader = self._writer = None
                return await self.fallback.start(command, environment)
            return ForkedChild(int(reply["pid"]))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()
