"""Batch jobs and the command line: fetch or read inputs, compute in core, write through warehouse."""
