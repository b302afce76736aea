"""Policy: classify messages and decide per recipient."""
