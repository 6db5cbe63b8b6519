"""monitor.py --web: the board, alerts and chart data over HTTP, live by Server-Sent Events, read-only."""
