"""neuralfactor.matvec (see DESIGN.md)."""
