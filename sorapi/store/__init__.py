"""Persistence: SQLAlchemy 2 models, engines and the small repositories that touch them."""
