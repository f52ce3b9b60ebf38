"""Pure-Python core of Millrace: domains, features, online models, drift, training, registry.

Nothing in this package imports faust or fastapi; ``streams`` and ``api`` adapt it.
"""
