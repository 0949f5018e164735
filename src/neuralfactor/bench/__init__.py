"""neuralfactor.bench (see DESIGN.md)."""
