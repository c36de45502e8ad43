"""Tests of the document outputs (pipeline/outputs)."""
