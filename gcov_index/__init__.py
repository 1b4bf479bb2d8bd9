"""gcov-index: NISAR L2 GCOV granules as one time-stacked virtual Zarr store.

The public verbs: ``search``, ``select_latest``, ``scan``, ``build``, ``open_store``.
"""

from ._version import __version__
from .discover.query import SearchQuery
from .discover.search import FoundGranule, SearchResult, search
from .discover.select import select_latest
from .errors import AccessError, AuthError, BadInputError, GcovIndexError
from .granule import Granule
from .index.scan import scan
from .io.access import Access
from .read.open import open_store
from .store.build import build

__all__ = [
           "Access",
           "AccessError",
           "AuthError",
           "BadInputError",
           "FoundGranule",
           "GcovIndexError",
           "Granule",
           "SearchQuery",
           "SearchResult",
           "__version__",
           "build",
           "open_store",
           "scan",
           "search",
           "select_latest",
]
