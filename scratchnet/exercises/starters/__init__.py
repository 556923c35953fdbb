"""Starter files of ``scratchnet exercise start NAME``: read as text, never imported by scratchnet."""
