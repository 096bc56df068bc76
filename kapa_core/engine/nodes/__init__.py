"""Node runtimes, one module per family; ``build_node`` maps a spec to its runtime."""
