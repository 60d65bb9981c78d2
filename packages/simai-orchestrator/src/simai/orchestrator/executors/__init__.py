"""Built-in executors. Each module imports its engine lazily, inside ``get_executor()``."""
