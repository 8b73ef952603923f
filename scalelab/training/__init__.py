"""Training and full-ranking evaluation of retrieval models."""
