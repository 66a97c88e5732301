"""The web service: HTTP API, pages and resumable uploads over the pipeline and the steps."""
