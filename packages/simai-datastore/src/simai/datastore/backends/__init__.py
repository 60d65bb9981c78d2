"""Built-in backends. Each registers through the ``simai.datastore.backends`` entry-point group."""
