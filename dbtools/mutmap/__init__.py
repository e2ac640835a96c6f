"""Mutation maps: the score change of every single-base substitution, as files and figures."""
