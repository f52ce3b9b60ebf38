"""One store class per aggregate of the registry, sharing one ``Database``."""
