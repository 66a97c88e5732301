"""What ``wrk --latency`` printed, read once for every benchmark that drives it."""

from __future__ import annotations

import re

_TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse(out: str) -> dict:
    """``{"rps", "p50", "p99" (milliseconds), "errors" (non-2xx/3xx responses)}``."""

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m is None:
            raise ValueError(f"wrk printed no {label}% latency:\n{out}")
        return float(m[1]) * _TO_MS[m[2]]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": ms("50"), "p99": ms("99"), "errors": int(errors[1]) if errors else 0}
