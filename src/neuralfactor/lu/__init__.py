"""neuralfactor.lu (see DESIGN.md)."""
