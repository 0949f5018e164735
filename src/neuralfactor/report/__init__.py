"""neuralfactor.report (see DESIGN.md)."""
