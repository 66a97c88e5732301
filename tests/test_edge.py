"""A real nginx edge, configured by ``reelforge cdn nginx``, in front of the origin.

A Zipf-distributed viewer workload over several versioned titles is replayed through the
edge: after warm-up almost everything is served from the edge cache, the origin sees each
segment about once (cache lock), and a republished title's manifest is picked up within
its TTL with every player seeing one version only. Needs nginx (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin

import httpx
import pytest
from conftest import Server, free_port, run_cli

from reelforge.delivery.cdn import cloudfront_config, validate_cloudfront
from reelforge.delivery.versions import new_version_name, switch

TITLES = 5
SESSIONS = 200
WARMUP = 40
TTL = 2
SERVED = ("HIT", "STALE", "UPDATING")  # answered from the edge's cache


def _version_of(master: str) -> set[str]:
    return {ln.split("/")[0] for ln in master.splitlines() if ln and not ln.startswith("#")}


@pytest.fixture(scope="module")
def edge(tmp_path_factory, talk):
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed (.ci/run installs the Debian package)")
    published, _ = talk
    root = tmp_path_factory.mktemp("titles")
    for i in range(TITLES):
        version = new_version_name()
        shutil.copytree(published, root / f"title{i}" / version)
        switch(root / f"title{i}", version)
    origin = Server(root, env={"REELFORGE_MANIFEST_MAX_AGE": str(TTL)})
    prefix = tmp_path_factory.mktemp("edge")
    port = free_port()
    conf = prefix / "nginx.conf"
    user = ["--user", "root"] if os.geteuid() == 0 else []
    made = run_cli("cdn", "nginx", "-o", conf, "--origin", f"127.0.0.1:{origin.port}",
                   "--listen", f"127.0.0.1:{port}", "--prefix", prefix, *user)  # fmt: skip
    assert made.returncode == 0, made.stderr
    nginx = subprocess.Popen(["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(base + "/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    yield base, root, origin
    nginx.terminate()
    nginx.wait(timeout=10)
    origin.stop()


def _session(client: httpx.Client, base: str, title: str, rng: random.Random) -> list:
    """One viewer: master, one video rung and the audio, init and every segment."""
    seen = []

    def get(url: str) -> httpx.Response:
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code)
        seen.append((url, r.headers.get("x-cache-status", ""), r.text if url.endswith(".m3u8")
                     and url.endswith("master.m3u8") else None))  # fmt: skip
        return r

    master_url = f"{base}/media/{title}/master.m3u8"
    master = get(master_url).text
    variants = [ln for ln in master.splitlines() if ln and not ln.startswith("#")]
    audio = [ln.split('URI="')[1].split('"')[0] for ln in master.splitlines()
             if ln.startswith("#EXT-X-MEDIA") and "URI=" in ln]  # fmt: skip
    # players mostly settle on the same rung (the top one on a good link)
    rung = rng.choices(variants, weights=[1, 2, 4, 8][-len(variants) :])[0]
    for playlist in [rung, *audio]:
        url = urljoin(master_url, playlist)
        text = get(url).text
        init = [ln.split('URI="')[1].split('"')[0] for ln in text.splitlines()
                if ln.startswith("#EXT-X-MAP")]  # fmt: skip
        for item in init + [ln for ln in text.splitlines() if ln and not ln.startswith("#")]:
            get(urljoin(url, item))
    return seen


def test_zipf_replay_is_served_by_the_edge(edge):
    base, _, _ = edge
    rng = random.Random(7)
    weights = [1 / (k + 1) ** 1.2 for k in range(TITLES)]
    titles = rng.choices([f"title{i}" for i in range(TITLES)], weights=weights, k=SESSIONS)
    started = time.monotonic()
    with httpx.Client(timeout=30) as client:
        warm = [_session(client, base, t, random.Random(i)) for i, t in enumerate(titles[:WARMUP])]
        with ThreadPoolExecutor(8) as pool:
            rest = list(pool.map(lambda it: _session(client, base, it[1], random.Random(it[0])),
                                 enumerate(titles[WARMUP:], start=WARMUP)))  # fmt: skip
    assert time.monotonic() - started < 120
    after = [s for session in rest for s in session]
    hits = sum(1 for _, status, _ in after if status in SERVED)
    ratio = hits / len(after)
    missed = [url for url, status, _ in after if status not in SERVED]
    assert ratio > 0.95, (ratio, Counter(status for _, status, _ in after), missed[:10])
    # Cache lock: each segment came from the origin at most once in the whole replay.
    misses = Counter(url for session in warm + rest for url, status, _ in session
                     if url.endswith(".m4s") and status not in SERVED)  # fmt: skip
    assert misses and max(misses.values()) == 1, misses.most_common(3)
    # Every master a viewer got names one version.
    for session in warm + rest:
        for _, _, master in session:
            if master is not None:
                assert len(_version_of(master)) == 1


@pytest.mark.timing  # the new master within the TTL and 1.5 s
def test_republished_manifest_refreshes_within_its_ttl(edge):
    base, root, _ = edge
    stream = root / "title0"
    old = json.loads((stream / "current.json").read_text())["version"]
    url = f"{base}/media/title0/master.m3u8"
    assert _version_of(httpx.get(url).text) == {old}
    new = new_version_name()
    shutil.copytree(stream / old, stream / new)
    switch(stream, new)
    switched = time.monotonic()
    seen = []
    while time.monotonic() - switched < TTL + 3:
        r = httpx.get(url)
        versions = _version_of(r.text)
        assert len(versions) == 1 and versions <= {old, new}  # never a mix
        seen.append((time.monotonic() - switched, versions.pop(), r.headers["x-cache-status"]))
        if seen[-1][1] == new:
            break
        time.sleep(0.2)
    assert seen[-1][1] == new, seen
    # nginx keeps time in whole seconds, so "fresh for 2 s" lasts 2-3 s; then one stale
    # answer while the background update runs, and the next request gets the new master.
    assert seen[-1][0] <= TTL + 1.5, seen
    assert any(status == "STALE" for _, _, status in seen) or len(seen) == 1
    # the new master's children play from the edge
    child = next(ln for ln in httpx.get(url).text.splitlines() if ln and not ln.startswith("#"))
    assert httpx.get(urljoin(url, child)).status_code == 200


def test_cloudfront_config_matches_botocore_model(tmp_path):
    result = run_cli("cdn", "cloudfront", "-o", tmp_path, "--origin-domain", "origin.example.com",
                     "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)["files"]
    dist = json.loads((tmp_path / "distribution-config.json").read_text())
    patterns = {b["PathPattern"]: b for b in dist["CacheBehaviors"]["Items"]}
    assert {"*.m3u8", "*.mpd", "*.m4s", "/img/*"} <= set(patterns)
    assert dist["Origins"]["Items"][0]["OriginShield"]["Enabled"] is True
    manifests = json.loads((tmp_path / "cache-policy-reelforge-manifests.json").read_text())
    segments = json.loads((tmp_path / "cache-policy-reelforge-segments.json").read_text())
    assert manifests["DefaultTTL"] == 60 and segments["DefaultTTL"] == 31536000
    assert len(files) == 4
    broken = cloudfront_config(origin_domain="o.example.com")
    broken["distribution"]["DefaultCacheBehavior"]["ViewerProtocolPolicy"] = 7
    broken["cache_policies"]["reelforge-images"].pop("MinTTL")
    problems = validate_cloudfront(broken)
    assert any("ViewerProtocolPolicy" in p for p in problems)
    assert any("MinTTL" in p for p in problems)
