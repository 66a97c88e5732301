"""Benchmark: real-time factor and DNSMOS per available voice backend, same script, one run.

Real-time factor = synthesis seconds / seconds of speech (model loading excluded: each
backend speaks a warm-up line first). DNSMOS (P.835 overall) is scored on the final,
loudness-normalised output. Targets for the offline default (piper): RTF <= 0.05, DNSMOS
>= 3.3. Hosted backends run only when their keys are set; dia only with --dia-model (or
--dia-tiny, a random tiny model that measures the pipeline, not the voice).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reelforge import config  # noqa: E402
from reelforge.voice import backends as registry  # noqa: E402
from reelforge.voice.render import VoiceOptions, render  # noqa: E402

SCRIPT = """[S1] Good evening, and welcome to the late edition. (clears throat) Tonight we have
three stories for you, and the first one begins on a quiet street at the edge of town.
[S2] A street where, until last Tuesday, nothing much ever happened. (laughs) Then the
bakery on the corner started giving bread away, and nobody could explain why.
[S1] The owner says it is simple. She had more flour than she could ever use, and she
thought the neighbours might as well have it.

[S2] Our second story is about the weather. (sighs) Rain, and then more rain, for the
rest of the week. Farmers are pleased. Everyone else is buying umbrellas.
[S1] And finally, a note of thanks to everyone who wrote in. We read every letter.
"""


def tiny_dia(folder: Path) -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import build_tiny_dia

    return str(build_tiny_dia(folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dia-model", help="Dia weights (folder or hub id)")
    parser.add_argument("--dia-tiny", action="store_true", help="time a tiny random Dia model")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rf-voice-bench-"))
    script = work / "script.txt"
    script.write_text(SCRIPT)
    services = config.load().services  # a script is an edge: hosted keys from the environment
    runs: list[tuple[str, dict]] = [("espeak", {})]
    if registry.default_name() == "piper":
        runs.append(("piper", {}))
    if args.dia_model:
        runs.append(("dia", {"model": args.dia_model}))
    elif args.dia_tiny:
        runs.append(("dia", {"model": tiny_dia(work / "tiny-dia"), "max_new_tokens": 200}))
    if "FAL_KEY" in services.keys:
        runs.append(("fal", {}))
    if "SEGMIND_API_KEY" in services.keys:
        runs.append(("segmind", {}))
    print(f"script: {len(SCRIPT.split())} words, default backend: {registry.default_name()}")
    head = ("backend", "speech s", "synth s", "RTF", "DNSMOS", "LUFS", "dBTP")
    print(f"{head[0]:<8} " + " ".join(f"{h:>8}" for h in head[1:]))
    for name, opts in runs:
        # Warm-up (model load) on a throwaway line, then the measured run with a cold cache.
        warm = work / f"warm-{name}.txt"
        warm.write_text("[S1] Warming up.")
        quiet = VoiceOptions(backend=name, backend_options=opts, mos=False,
                             use_cache=False)  # fmt: skip
        render(warm, work / f"warm-{name}.wav", quiet, services=services)
        t0 = time.monotonic()
        report = render(script, work / f"{name}.wav", VoiceOptions(
            backend=name, backend_options=opts, use_cache=False), services=services)  # fmt: skip
        wall = time.monotonic() - t0
        synth = report.real_time_factor * report.duration
        mos = report.dnsmos["overall"] if report.dnsmos else float("nan")
        print(f"{name:<8} {report.duration:9.2f} {synth:8.2f} {report.real_time_factor:7.4f} "
              f"{mos:7.2f} {report.loudness_lufs:7.2f} {report.true_peak_dbtp:6.2f}"
              f"   (whole render incl. post and DNSMOS {wall:.1f} s)")  # fmt: skip
    default = registry.default_name()
    print(f"targets for {default}: RTF <= 0.05, DNSMOS >= 3.3")


if __name__ == "__main__":
    main()
