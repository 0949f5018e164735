"""neuralfactor.amortized (see DESIGN.md)."""
