"""ReelForge: prepare video, voice and talking heads for fast, natural playback."""

__version__ = "0.1.0"
