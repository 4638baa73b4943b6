"""Titles, series, search, favorites, watch history, recommendations (schema `catalog`)."""
