"""Evaluation: one metrics module, one protocol (splits) module, one statistics module."""
