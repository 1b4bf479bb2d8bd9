"""Store: the formats (kerchunk JSON / Parquet) written from the model and read back, atomic
writes, and build (select -> scan -> merge -> write) in one call."""
