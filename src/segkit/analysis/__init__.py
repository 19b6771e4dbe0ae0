"""Segment analyses: funnels and journeys, overlap, splits, usage, attention, metrics.

Each analysis lives in its own module; the public names are re-exported from
:mod:`segkit`.
"""
