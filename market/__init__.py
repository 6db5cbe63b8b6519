"""When the US stock market trades: the NYSE calendar, the polling hours built on it, and its status."""
