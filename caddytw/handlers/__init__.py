"""The built-in handlers; each module is exposed as a plugin in ``twisted/plugins``."""
