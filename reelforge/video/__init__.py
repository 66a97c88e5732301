"""Adaptive video: ladders, encoding, CMAF packaging, posters and thumbnails."""
