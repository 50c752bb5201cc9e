"""When to ask a server again: the one policy of the openai backend's and the served judge's requests,
OpenAI's own client's: 408, 409, 429 and 5xx answers and no answer are tried again, after the wait the
refusal asks for where it says one, else after an exponential backoff."""

from __future__ import annotations

import email.utils
import time

RETRIED = frozenset({408, 409, 429, 500, 502, 503, 504})  # timed out, conflict, rate limited, the server's trouble


def retry_after(headers) -> float | None:
    """How long a refusal asks to wait, in seconds: `retry-after-ms` (OpenAI's API) or `Retry-After`
    (seconds, or an HTTP date; RFC 9110); None where it says nothing usable or more than a minute, as
    OpenAI's own client reads them (then the backoff decides)."""
    wait = None
    try:
        if headers.get("retry-after-ms") is not None:
            wait = float(headers["retry-after-ms"]) / 1000
        elif headers.get("retry-after") is not None:
            said = headers["retry-after"].strip()
            try:
                wait = float(said)
            except ValueError:
                when = email.utils.parsedate_to_datetime(said)
                wait = when.timestamp() - time.time() if when is not None else None
    except (TypeError, ValueError):
        return None
    return max(wait, 0.0) if wait is not None and wait <= 60 else None


def wait_s(attempt: int, headers=None) -> float:
    """Seconds to wait after the `attempt`-th try (1 = the first) failed: what its answer's headers ask
    for (retry_after), else 0.5 s doubling per try, at most 8 s."""
    asked = retry_after(headers) if headers is not None else None
    return asked if asked is not None else min(0.5 * 2 ** (attempt - 1), 8.0)
