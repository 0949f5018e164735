"""neuralfactor.spectral (see DESIGN.md)."""
