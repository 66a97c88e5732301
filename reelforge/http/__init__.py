"""The shared client for hosted model APIs."""
