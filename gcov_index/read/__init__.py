"""Read: a store opened as xarray, a bbox time series, validation against the sources, info."""
