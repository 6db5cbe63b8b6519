"""What the monitor shows, read from the database through a connection that cannot write.

queries reads summaries, prices and alerts as of any moment; board builds the figures of each
symbol's line and the market line; board_text and terminal draw them in a terminal; selection
decides which symbols the table shows and in what order; chart draws price history as a PNG.
"""
