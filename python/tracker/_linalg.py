"""NumPy's linear algebra on tracked arrays: `np.linalg.*` and the products, registered
into the `__array_function__` table."""
