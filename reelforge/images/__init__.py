"""Images: safe reading, responsive sets, placeholders."""
