"""Months of data on a small disk: OHLCV roll-ups (bars), retention of raw rows, the file's free pages
given back, and the consumer's thread that keeps them so."""
