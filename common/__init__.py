"""Small helpers every part shares, importing nothing of the project's.

Exit codes, one-line errors and stop signals (cli), short durations (durations), keeping secrets
out of every log line (redact), what a ticker symbol looks like (symbols), and the stored-time form
of a timestamp (timestamps).
"""
