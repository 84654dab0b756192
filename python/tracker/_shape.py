"""NumPy's shape, joining, indexing and statistics functions on tracked arrays, built from
the core's gather, place, reshape and transpose, registered into the `__array_function__`
table."""
