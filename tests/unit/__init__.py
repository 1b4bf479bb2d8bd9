"""Fast unit tests of the pure parts: hand-made manifests, no HDF5, no servers."""
