"""Pieces every layer may use: domain errors and the database component."""
