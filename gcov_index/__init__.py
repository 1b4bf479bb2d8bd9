"""gcov-index: NISAR L2 GCOV granules as one time-stacked virtual Zarr store.

The public verbs: ``select_latest``, ``scan``, ``build``, ``open_store``.
"""

__version__ = "0.1.0"

from .errors import AccessError, AuthError, BadInputError, GcovIndexError  # noqa: E402
from .granule import Granule  # noqa: E402
from .indexer.build import build  # noqa: E402
from .indexer.scan import scan  # noqa: E402
from .indexer.select import select_latest  # noqa: E402
from .references.access import Access  # noqa: E402
from .references.open import open_store  # noqa: E402

__all__ = ["Access", "AccessError", "AuthError", "BadInputError", "GcovIndexError", "Granule",
           "build", "open_store", "scan", "select_latest"]
