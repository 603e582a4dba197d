"""Writing to the host's log, tagged with the policy's name (1 KiB a line, 64
lines a call). Never log secrets. Natively (tests) lines go to stderr."""

import sys

from wit_world.imports import host
from wit_world.imports.types import LogLevel


def write(level: LogLevel, message: str) -> None:
    try:
        host.log(level, str(message))
    except NotImplementedError:  # native run: the generated stub
        print(f"{level.name} {message}", file=sys.stderr)


def trace(message: str) -> None:
    write(LogLevel.TRACE, message)


def debug(message: str) -> None:
    write(LogLevel.DEBUG, message)


def info(message: str) -> None:
    write(LogLevel.INFO, message)


def warn(message: str) -> None:
    write(LogLevel.WARN, message)


def error(message: str) -> None:
    write(LogLevel.ERROR, message)
