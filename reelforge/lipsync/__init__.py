"""Talking heads: face landmarks, lip-sync backends and the audio-visual sync meter."""
