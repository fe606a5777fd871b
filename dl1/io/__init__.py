"""Files and processes, no Keras: user-facing errors, atomic writes, compressed arrays, CSV files, thread pools,
downloads and the ``dl1`` logger."""
