"""Tests of the synthetic corpus generator."""
