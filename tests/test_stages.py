"""Publish's stages on their own: a pure plan, ranged encodes that join frame-exactly."""

from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import media

from reelforge.media.probe import probe
from reelforge.video import stages
from reelforge.video.ladder import Rung
from reelforge.video.publish import PublishOptions
from reelforge.video.timeline import Timeline


def _options(**extra) -> PublishOptions:
    return PublishOptions(rungs=[Rung(width=416, height=234, bitrate_kbps=400)],
                          segment_duration=2.0, preset="fast", **extra)  # fmt: skip


def _frames(path, size=None) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        out = []
        for f in c.decode(video=0):
            if size:
                f = f.reformat(width=size[0], height=size[1])
            out.append(f.to_ndarray(format="gray").astype(np.float32))
    return out


def test_plan_is_pure_data_that_serialises():
    import json

    info = probe(media("video/tears_of_steel_360p_10s.mp4"))
    plan = stages.plan(info, _options())
    assert [r.name for r in plan.renditions] == ["h264-416x234-400k"]
    assert plan.timeline.opening == (1.0, 1.0) and plan.audio is None
    data = json.loads(json.dumps(plan.as_dict()))
    assert data["renditions"][0]["width"] == 416 and data["start_segments"] == [1.0, 1.0]


def test_chunk_timeline_needs_a_boundary_after_the_opening():
    t = Timeline(4.0, (1.0, 1.0, 2.0))
    assert stages.chunk_timeline(t, 0) is t
    assert stages.chunk_timeline(t, 8.0) == Timeline(4.0, ())
    for bad in (2.0, 5.0, 9.0):
        with pytest.raises(ValueError, match="segment boundary"):
            stages.chunk_timeline(t, bad)


def test_ranged_encodes_join_to_the_whole_encode_frame_for_frame(tmp_path):
    src = media("video/tears_of_steel_360p_10s.mp4")
    info = probe(src)
    plan = stages.plan(info, _options())
    name = plan.renditions[0].name
    (tmp_path / "whole").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole = stages.encode(src, plan, tmp_path / "whole")
    first = stages.encode(src, plan, tmp_path / "a", start=0, duration=4.0)
    second = stages.encode(src, plan, tmp_path / "b", start=4.0)
    assert first.audio is None and second.audio is None  # audio is encoded once, whole
    assert second.report.start == 4.0
    n_whole = len(_frames(whole.video[name]))
    a, b = _frames(first.video[name]), _frames(second.video[name])
    fps = info.video[0].frame_rate
    assert len(a) == round(4.0 * fps)
    assert len(a) + len(b) == n_whole, (len(a), len(b), n_whole)
    # the second range opens on the source frame at 4.0 s exactly: closer to it than to
    # either neighbour
    reference = _frames(src, size=(416, 234))
    k = round(4.0 * fps)
    err = [float(np.mean((b[0] - reference[i]) ** 2)) for i in (k - 1, k, k + 1)]
    assert err[1] < min(err[0], err[2]) / 2, err
    # and each range starts with a keyframe, with the title's grid inside it
    with av.open(str(second.video[name])) as c:
        keys = [float(p.pts * p.time_base) for p in c.demux(video=0)
                if p.is_keyframe and p.pts is not None]  # fmt: skip
    keys = [round(t - keys[0], 2) for t in keys]
    assert keys[:3] == [0.0, 2.0, 4.0], keys
