"""Discover: what to index. A typed query, asf_search against CMR, and the selection of the
latest release of each acquisition."""
