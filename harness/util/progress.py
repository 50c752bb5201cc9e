"""Progress bars for the long stages, on a terminal only.

Bars go to stderr and are shown when stderr is a terminal; logs and CI output stay plain lines.
`HARNESS_PROGRESS=1` forces them on, `0` off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def enabled() -> bool:
    setting = os.environ.get("HARNESS_PROGRESS", "auto")
    if setting in ("0", "1"):
        return setting == "1"
    return sys.stderr.isatty()


def bar(total: int, desc: str, unit: str):
    """A tqdm bar on stderr (a disabled one when progress is off)."""
    from tqdm import tqdm

    # `disable` is passed explicitly: the CLI sets TQDM_DISABLE for other libraries' bars
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled(), file=sys.stderr,
                dynamic_ncols=True)


def printer(bar, log: Callable[[str], None]) -> Callable[[str], None]:
    """`log`, clearing the bar while the line is written so the two never interleave."""
    if bar.disable:
        return log

    def say(message: str) -> None:
        with bar.external_write_mode():
            log(message)

    return say
