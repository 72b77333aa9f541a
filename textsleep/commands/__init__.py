"""Command groups of the ``textsleep`` CLI; each module has ``register(app)``."""
