"""The rate-quality chart of a publish: bitrate against VMAF per codec and rung.

Contract: :func:`rate_quality_svg` draws each codec's renditions (average kb/s on a log axis,
VMAF mean) as a line with its resolutions marked, plus the convex hull when one is given
(per-title ladders), and returns the SVG text. matplotlib draws it headless (Agg).
"""

from __future__ import annotations

import io

from reelforge.video.bdrate import Point

COLOURS = {"h264": "#1f77b4", "hevc": "#2ca02c", "vp9": "#ff7f0e", "av1": "#d62728"}


def rate_quality_svg(by_codec: dict[str, list[tuple[Point, str]]], title: str,
                     hull: list[Point] | None = None) -> str:  # fmt: skip
    """``by_codec``: codec -> [(point, label such as "1280x720")]."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: small, searchable
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    try:
        if hull:
            ax.plot([p.kbps for p in hull], [p.quality for p in hull], color="0.6", lw=6,
                    alpha=0.35, label="convex hull (analysis)", zorder=1)  # fmt: skip
        for codec, items in by_codec.items():
            items = sorted(items, key=lambda it: it[0].kbps)
            xs, ys = [p.kbps for p, _ in items], [p.quality for p, _ in items]
            ax.plot(xs, ys, marker="o", color=COLOURS.get(codec), label=codec, zorder=2)
            for p, label in items:
                ax.annotate(label, (p.kbps, p.quality), textcoords="offset points",
                            xytext=(4, -10), fontsize=7, color="0.3")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("average bitrate (kb/s, log scale)")
        ax.set_ylabel("VMAF (mean)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right")
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        return buf.getvalue()
    finally:
        plt.close(fig)
