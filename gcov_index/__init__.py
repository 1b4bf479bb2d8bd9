"""gcov-index: NISAR L2 GCOV granules as one time-stacked virtual Zarr store.

The verbs, in the order of the flow: ``search`` (asf_search, the preferred release of each
acquisition), ``build`` (select -> scan -> stacks -> merge -> write), ``open_store`` (xarray
DataTree), ``subset`` (a bbox time series over every stack; ``write_series`` saves it as CSV or
CF-1.10 NetCDF, ``plot_series`` as a PNG), ``validate`` (the store against its
sources), ``info`` (what a store holds). Each is
imported on first use, so ``import gcov_index`` (and the CLI's ``--help``) stays cheap.

What they return (``SearchResult``, ``BuildResult``, ``StoreInfo``, ``ValidationReport``) has a
one-line ``repr``, shows as a table in a notebook, and gives ``to_dataframe()`` (pandas);
``SearchResult.to_geojson()`` gives the granules' footprints.
"""

from __future__ import annotations

import logging
from importlib import import_module

from ._version import __version__

# a library configures no handler: its records (the "gcov_index" logger tree, gcov_index._log)
# are printed only when the application sets up logging, as the CLI does with -v, -vv, --quiet
logging.getLogger(__name__).addHandler(logging.NullHandler())

# The package loads before the command's Ctrl-C handler (gcov_index.__main__), so it imports as
# little as it can: not typing, not even the error types (they load lazily like the verbs).

# public name -> (module, attribute), loaded by __getattr__ on first use
_LAZY = {
    "search": ("discover.search", "search"),
    "SearchQuery": ("discover.query", "SearchQuery"),
    "SearchResult": ("discover.search", "SearchResult"),
    "FoundGranule": ("discover.search", "FoundGranule"),
    "select_latest": ("discover.select", "select_latest"),
    "scan": ("index.scan", "scan"),
    "build": ("store.build", "build"),
    "BuildResult": ("store.build", "BuildResult"),
    "open_store": ("read.open", "open_store"),
    "subset": ("read.subset", "subset"),
    "Box": ("read.subset", "Box"),
    "write_series": ("read.subset", "write_series"),
    "plot_series": ("read.subset", "plot_series"),
    "validate": ("read.validate", "validate"),
    "info": ("read.info", "store_info"),
    "StoreInfo": ("read.info", "StoreInfo"),
    "ValidationReport": ("read.validate", "ValidationReport"),
    "Access": ("io.access", "Access"),
    "Endpoints": ("io.endpoints", "Endpoints"),
    "Granule": ("granule", "Granule"),
    **{e: ("errors", e) for e in ("AccessError", "AuthError", "BadInputError", "GcovIndexError",
                                  "NoResultsError", "SearchError", "ValidationError")},
}

__all__ = [  # noqa: RUF022 (in the order of the flow, not sorted)
    "search", "SearchQuery", "SearchResult", "FoundGranule", "select_latest", "scan", "build",
    "BuildResult", "open_store", "subset", "Box", "write_series", "plot_series", "validate",
    "ValidationReport", "info", "StoreInfo", "Access", "Endpoints", "Granule",
    "AccessError", "AuthError", "BadInputError", "GcovIndexError", "NoResultsError",
    "SearchError", "ValidationError", "__version__",
]


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'gcov_index' has no attribute {name!r}") from None
    value = getattr(import_module(f".{module}", __name__), attr)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
