"""The one place that runs ffmpeg and reads media."""
