"""Talking to the dataset host: HTTP with resume, ZIP members over range reads, safe extraction."""
