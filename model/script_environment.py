"""The environment an inference script sees, without changing the server's own.

In a SageMaker container a model's `Environment` is the process's environment:
the script reads it with `os.environ`. byom's server hosts several models in one
process, each with its own environment (container.json,
model/server/container_settings.py), and runs their calls on threads at once, so
setting `os.environ` per model would leak one model's variables into another's
calls, and into byom's own code (`AWS_*` variables would redirect its S3 reads).

Instead a script module is imported with a builtins namespace of its own whose
`__import__` answers `import os` (and `import os.path`, `from os import environ,
getenv`) with a copy of the `os` module whose `environ` is the process's
environment overlaid with the model's, and whose `getenv` reads that. Nothing
process-wide changes. The differences from a real container, documented:

- only the script's own module sees the model's variables; modules it imports
  (its helpers in code/, libraries) see the process's environment;
- a variable the script sets in `os.environ` stays in its own mapping: it does
  not reach subprocesses or libraries (`os.putenv` is the process's and is left
  as it is);
- `importlib.import_module("os")` or `sys.modules["os"]` gives the real module.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any


def os_module(environment: Mapping[str, str]) -> ModuleType:
    """A copy of `os` whose `environ` and `getenv` read `environment` over the
    process's variables (taken now)."""
    environ: dict[str, str] = {**os.environ, **environment}
    proxy = ModuleType("os", os.__doc__)
    proxy.__dict__.update(os.__dict__)

    def getenv(key: str, default: Any = None) -> Any:
        return environ.get(key, default)

    proxy.__dict__["environ"] = environ
    proxy.__dict__["getenv"] = getenv
    return proxy


def script_builtins(environment: Mapping[str, str]) -> dict[str, Any]:
    """A builtins namespace for a script module: `import os` gives `os_module`."""
    proxy = os_module(environment)
    real_import = builtins.__import__

    def import_(
        name: str,
        globals: Mapping[str, object] | None = None,
        locals: Mapping[str, object] | None = None,
        fromlist: tuple[str, ...] | list[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        module = real_import(name, globals, locals, fromlist or (), level)
        if level == 0 and (name == "os" or (name.startswith("os.") and not fromlist)):
            return proxy
        return module

    namespace = dict(vars(builtins))
    namespace["__import__"] = import_
    return namespace
