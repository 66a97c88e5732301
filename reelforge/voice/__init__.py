"""Voice: dialogue scripts to loudness-normalised voice-over with subtitles."""
