"""Where a byom command points: the top-level options (:class:`Where`) as a :class:`Target`.

Locally that is make up's stack (--endpoint-url, default http://127.0.0.1:4566); with
--stack NAME a deployed stack on AWS, whose CloudFormation outputs give every name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from cli.exits import EXIT_USAGE, fail
from cli.target import LOCAL_ENDPOINT, Target, TargetError, local_target, stack_target


@dataclass(frozen=True)
class Where:
    endpoint_url: str | None
    stack: str | None
    region: str | None
    bucket: str | None
    log_dir: Path | None

    def target(self) -> Target:
        try:
            if self.stack:
                return stack_target(self.stack, region=self.region, endpoint_url=self.endpoint_url)
        except TargetError as exc:
            fail(str(exc), EXIT_USAGE)
        return local_target(
            self.endpoint_url or LOCAL_ENDPOINT,
            region=self.region or "us-east-1",
            bucket=self.bucket,
            log_dir=self.log_dir,
        )


def target_of(ctx: typer.Context) -> Target:
    where: Where = ctx.obj
    return where.target()
