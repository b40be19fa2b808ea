"""Plaintext memory."""
