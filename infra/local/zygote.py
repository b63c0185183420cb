"""Warm starts for the local Batch runner: fork children from a pre-imported process.

A fresh ``python -m services.inference_worker.main`` spends most of a second
importing boto3, aiobotocore, pandas and friends before it does any work. The
zygote imports the preloaded modules once and then, for each request, forks a
child that runs the module as ``__main__`` exactly as ``python -m`` would, with
the environment it was sent (and nothing else).

The child is made to look like any other child of the runner:

* It is forked twice, so that it is re-parented to the runner (which marks itself
  a child subreaper): the runner waits for it, kills it and reads its exit status
  as for a process it had started itself.
* Its ``/proc/<pid>/environ`` and ``/proc/<pid>/cmdline`` are rewritten in place
  to the Batch environment and the job's command, so that tools that inspect
  processes (and the fault tests) see a Batch child, not a copy of the zygote.

Only imports happen in the zygote, never calls: nothing at import time of the
preloaded modules may create clients, caches, threads or event loops, so that
no state is shared between children.

    python -m infra.local.zygote --fd 3 services.inference_worker.main
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import socket
import sys
import types
from pathlib import Path
from typing import Any

# Room left in the zygote's environment block so that a child can write its own,
# larger, environment there (the kernel shows that block as /proc/<pid>/environ).
ENV_ROOM_VARIABLE = "BYOM_LOCAL_ZYGOTE_ENV_ROOM"
ENV_ROOM_BYTES = 32 * 1024


def _proc_stat_fields() -> list[int]:
    stat = Path("/proc/self/stat").read_text()
    # Fields 4 onwards: after the command name (in parentheses, may hold spaces)
    # and the state letter.
    return [int(value) for value in stat.rsplit(")", 1)[1].split()[1:]]


def _rewrite(start: int, end: int, items: list[str]) -> None:
    """Overwrite the memory the kernel reports for argv or environ, NUL-padded."""
    data = b"".join(item.encode() + b"\0" for item in items)
    room = end - start
    if len(data) > room:
        return  # it does not fit: better the zygote's than a truncated one
    with open("/proc/self/mem", "r+b", buffering=0) as mem:  # noqa: PTH123 (raw file)
        mem.seek(start)
        mem.write(data + b"\0" * (room - len(data)))


def _show_as(command: list[str], environment: dict[str, str]) -> None:
    """Make /proc/self/{cmdline,environ} say what a freshly executed child would."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = _proc_stat_fields()
        # proc(5): arg_start, arg_end, env_start, env_end are fields 48-51.
        arg_start, arg_end, env_start, env_end = fields[48 - 4 : 52 - 4]
        _rewrite(arg_start, arg_end, command)
        _rewrite(env_start, env_end, [f"{k}={v}" for k, v in environment.items()])


def _spawn(request: dict[str, Any], control: socket.socket) -> dict[str, Any] | None:
    """Fork the child; returns its request in the child, None in the zygote."""
    read_end, write_end = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:  # the intermediate: fork the child, report its pid, leave
        os.close(read_end)
        child = os.fork()
        if child == 0:
            os.close(write_end)
            control.close()
            return request
        os.write(write_end, str(child).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        pid = int(pipe.read() or b"0")
    # Once the intermediate is reaped, the child belongs to the runner.
    os.waitpid(intermediate, 0)
    reply = {"pid": pid} if pid else {"error": "fork failed"}
    control.sendall(json.dumps(reply).encode() + b"\n")
    return None


def serve(control: socket.socket) -> dict[str, Any]:
    """Answer spawn requests until the runner goes away; returns only in a child."""
    with control.makefile("rb") as lines:
        for line in lines:
            request = json.loads(line)
            child_request = _spawn(request, control)
            if child_request is not None:
                return child_request
    sys.exit(0)


def become(request: dict[str, Any]) -> None:
    """Turn this forked process into ``python -m MODULE ARGS`` with the given environment."""
    command: list[str] = request["command"]
    environment: dict[str, str] = request["environment"]
    os.environ.clear()
    os.environ.update(environment)
    _show_as(command, environment)
    # What `python -m MODULE` does: the module's code runs as a new __main__ (the
    # preloaded copy stays under its own name), with argv[0] its path. Any exit,
    # exception or not, then leaves through the interpreter as it would there:
    # atexit handlers, thread joins, the exit status.
    spec = importlib.util.find_spec(command[2])
    if spec is None or spec.loader is None or spec.origin is None:
        raise ImportError(f"no module named {command[2]}")
    code = spec.loader.get_code(command[2])  # type: ignore[attr-defined]
    main = types.ModuleType("__main__")
    main.__file__, main.__spec__, main.__loader__ = spec.origin, spec, spec.loader
    main.__package__ = spec.parent
    sys.modules["__main__"] = main
    sys.argv = [spec.origin, *command[3:]]
    exec(code, main.__dict__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the control socket")
    parser.add_argument("modules", nargs="+", help="modules to import once, up front")
    args = parser.parse_args()
    for module in args.modules:
        importlib.import_module(module)
    os.environ.pop(ENV_ROOM_VARIABLE, None)
    control = socket.socket(fileno=args.fd)
    become(serve(control))


if __name__ == "__main__":
    main()
