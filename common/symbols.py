"""What a ticker symbol may look like: one rule for the settings, the messages and the alert rules."""

import re

# Letters, digits, '.' and '-', at most 20: IBM, BRK.B, TSCO.LON, RDS-A.
SYMBOL_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9.\-]{0,19}")
