"""Index: one granule -> GranuleManifest (scan), and manifests -> VirtualTree stacked along
time (merge). The model; no store is written here."""
