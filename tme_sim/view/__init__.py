"""Browser view of runs (``tme view``, ``tme run --view``): Bokeh server app, file and live sources."""
