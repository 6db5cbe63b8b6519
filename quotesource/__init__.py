"""Where quotes come from: the Alpha Vantage client and its parsers, the call budget, the call schedule."""
