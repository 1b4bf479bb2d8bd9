"""gcov-index: NISAR L2 GCOV granules as one time-stacked virtual Zarr store.

The public verbs: ``search``, ``select_latest``, ``scan``, ``build``, ``open_store``.
"""

from ._version import __version__
from .errors import AccessError, AuthError, BadInputError, GcovIndexError
from .granule import Granule
from .indexer.build import build
from .indexer.query import SearchQuery
from .indexer.scan import scan
from .indexer.search import FoundGranule, SearchResult, search
from .indexer.select import select_latest
from .references.access import Access
from .references.open import open_store

__all__ = ["Access", "AccessError", "AuthError", "BadInputError", "FoundGranule",
           "GcovIndexError", "Granule", "SearchQuery", "SearchResult", "build", "open_store",
           "scan", "search", "select_latest"]
