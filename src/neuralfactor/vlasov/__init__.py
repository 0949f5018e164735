"""neuralfactor.vlasov (see DESIGN.md)."""
