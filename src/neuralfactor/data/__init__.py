"""neuralfactor.data (see DESIGN.md)."""
