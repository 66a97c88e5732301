"""The one settings object: built from an environment mapping and a settings file, the
environment winning; API keys from the environment only and never shown; handed down to the
steps, never read from the environment below the edge."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import ROOT, media, run_cli
from fakes import FakeSegmind

from reelforge import config
from reelforge.config import API_KEYS, Config, Services
from reelforge.errors import InputError

KEYS = {
    "FAL_KEY": "fal-secret-1111",
    "SEGMIND_API_KEY": "segmind-secret-2222",
    "SYNC_API_KEY": "sync-secret-3333",
    "REPLICATE_API_TOKEN": "replicate-secret-4444",
    "DID_API_KEY": "did-secret-5555",
}


def _settings_file(tmp_path: Path, text: str, name: str = "settings.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_environment_over_settings_file(tmp_path):
    file = _settings_file(tmp_path, f"""\
state_dir = "{tmp_path / "file-state"}"
sync_api_url = "http://file.example/sync/"
did_api_url = "http://file.example/did"
http_backoff = 0.25
sonic_version = "file-version"
ffmpeg = "{tmp_path / "file-ffmpeg"}"
user_cache_dir = "{tmp_path / "file-cache"}"
""")  # fmt: skip
    env = {"REELFORGE_CONFIG": str(file), "SYNC_API_URL": "http://env.example/sync",
           "REELFORGE_SONIC_VERSION": "env-version",
           "REELFORGE_CACHE_DIR": str(tmp_path / "env-cache"), **KEYS}  # fmt: skip
    cfg = config.load(env)
    assert cfg.state_dir == tmp_path / "file-state"  # only in the file
    assert cfg.ffmpeg == tmp_path / "file-ffmpeg"
    assert cfg.voice_cache_dir == tmp_path / "env-cache" / "voice"  # both: the environment's
    services = cfg.services
    assert services.url("SYNC_API_URL", "https://api.sync.so") == "http://env.example/sync"
    assert services.url("DID_API_URL", "https://api.d-id.com") == "http://file.example/did"
    assert services.url("SEGMIND_API_URL", "https://api.segmind.com/v1/") == (
        "https://api.segmind.com/v1"
    )  # unset: the default, without a trailing slash
    assert services.http_backoff == 0.25 and services.sonic_version == "env-version"
    assert services.key("FAL_KEY", service="fal.ai") == KEYS["FAL_KEY"]
    yaml_file = _settings_file(tmp_path, "fal_queue_url: http://yaml.example\n", "s.yaml")
    assert config.load({"REELFORGE_CONFIG": str(yaml_file)}).services.url(
        "FAL_QUEUE_URL", "https://queue.fal.run") == "http://yaml.example"  # fmt: skip


def test_defaults_without_settings():
    import platformdirs

    cfg = config.load({})
    cache = Path(platformdirs.user_cache_dir("reelforge", appauthor=False))
    assert cfg.voice_cache_dir == cache / "voice" and cfg.ffmpeg is None
    assert cfg.services == Services() and cfg.services.http_backoff == 1.0
    assert dict(cfg.services.keys) == {} and cfg.services.sonic_version is None


def test_keys_never_show_in_a_repr(tmp_path):
    env = {**KEYS, "REELFORGE_IMAGE_KEY": "image-secret-6666",
           "REELFORGE_PLAYBACK_KEY": "playback-secret-7777"}  # fmt: skip
    cfg = config.load(env)
    shown = repr(cfg) + str(cfg) + repr(cfg.services) + str(cfg.services)
    for secret in [*KEYS.values(), "image-secret-6666", "playback-secret-7777"]:
        assert secret not in shown
    for var in KEYS:  # which keys are set is shown; their values are not
        assert var in repr(cfg.services)


def test_a_missing_key_names_its_variable():
    with pytest.raises(InputError) as err:
        Services().key("FAL_KEY", service="fal.ai")
    assert str(err.value) == "fal.ai needs an API key: set FAL_KEY in the environment"
    blank = config.load({"SYNC_API_KEY": "   "}).services  # blank is missing
    with pytest.raises(InputError, match="set SYNC_API_KEY in the environment"):
        blank.key("SYNC_API_KEY", service="sync.so")


@pytest.mark.parametrize("name", ["FAL_KEY", "did_api_key"])
def test_a_key_in_the_settings_file_is_refused(tmp_path, name):
    file = _settings_file(tmp_path, f'{name} = "file-secret-8888"\n')
    with pytest.raises(InputError, match="API keys are read from the environment only") as err:
        config.load({"REELFORGE_CONFIG": str(file)})
    assert name in str(err.value) and "file-secret-8888" not in str(err.value)


def test_bad_backoff_is_a_clear_error():
    with pytest.raises(InputError, match="REELFORGE_HTTP_BACKOFF must be a number"):
        config.load({"REELFORGE_HTTP_BACKOFF": "soon"})


def test_the_voice_step_takes_keys_and_cache_from_the_settings_it_is_given(tmp_path):
    """The pipeline's voice step with a hosted backend (a local server speaking Segmind's
    protocol): with the settings given it reaches the service with their key and fills
    their voice cache; without them it has no key. The key is in neither its options nor
    its report."""
    from reelforge.pipeline import steps
    from reelforge.pipeline.spec import StepSpec
    from reelforge.progress import NullProgress

    fake = FakeSegmind(media("speech/LJ001-0002.wav").read_bytes())
    spec = StepSpec(name="voice-turn", version="1", options={
        "speaker": "S1", "text": "Hello there.", "backend": "segmind", "voice": None,
        "model": None, "seed": 7, "transcript": None, "lufs": -16.0})  # fmt: skip
    cfg = Config(services=Services(keys={"SEGMIND_API_KEY": "test-segmind-key"},
                                   urls={"SEGMIND_API_URL": fake.base}, http_backoff=0.01),
                 voice_cache_dir=tmp_path / "voice-cache")  # fmt: skip
    try:
        (tmp_path / "without").mkdir()
        with pytest.raises(InputError, match="set SEGMIND_API_KEY"):
            steps.voice_turn(spec, tmp_path / "without", NullProgress())
        assert fake.requests == []
        (tmp_path / "with").mkdir()
        with steps.using(cfg):
            report = steps.voice_turn(spec, tmp_path / "with", NullProgress())
    finally:
        fake.close()
    assert len(fake.requests) == 1 and report["backend"] == "segmind"
    assert (tmp_path / "with" / "speech.wav").is_file()
    assert list((tmp_path / "voice-cache").rglob("*.npz"))
    assert "test-segmind-key" not in json.dumps(report) + json.dumps(spec.to_json())


def test_ffmpeg_from_the_settings_file_is_the_one_the_cli_runs(tmp_path):
    """``ffmpeg`` in the settings file reaches the command's ffmpeg runs: a binary that is
    not there fails the command, naming it."""
    missing = tmp_path / "no-such-ffmpeg"
    file = _settings_file(tmp_path, f'ffmpeg = "{missing}"\n')
    env = {**os.environ, "REELFORGE_CONFIG": str(file)}
    env.pop("REELFORGE_FFMPEG", None)
    result = run_cli("sample", tmp_path / "s.mp4", "--duration", "1", env=env, timeout=120)
    assert result.returncode != 0 and str(missing) in result.stderr
    assert not (tmp_path / "s.mp4").exists()


# Where the process environment may be read: the edges (the command line, the settings, the
# delivery server's worker hand-off and app factory, the web layer) and faces.py, which only
# quiets MediaPipe's own logging.
EDGES = {"config.py", "delivery/server.py", "delivery/app.py", "lipsync/faces.py"}


def test_no_module_below_the_edge_reads_the_environment():
    package = ROOT / "reelforge"
    readers = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel in EDGES or re.fullmatch(r"cli[^/]*\.py", rel) or rel.startswith("web/"):
            continue
        text = path.read_text(encoding="utf-8")
        if "os.environ" in text or "getenv" in text:
            readers.append(rel)
    assert readers == []


def test_every_key_variable_is_a_services_key():
    """The key variables the backends name are the ones :func:`config.load` reads."""
    package = ROOT / "reelforge"
    named = set()
    for path in package.rglob("*.py"):
        named |= set(re.findall(r'key_env="([A-Z_]+)"', path.read_text(encoding="utf-8")))
    assert named == set(API_KEYS)
