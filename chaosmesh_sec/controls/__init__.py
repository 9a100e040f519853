"""Chaos Toolkit controls of the pack (declared in an experiment's ``controls``)."""
