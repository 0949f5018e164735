"""neuralfactor.distributed (see DESIGN.md)."""
