"""What the dashboard's pages share: the store per process, pandas frames, plotly figures.

Only the dashboard imports this package; the ``tracedb`` library never does.
"""
