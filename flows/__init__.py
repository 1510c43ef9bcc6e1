"""Prefect flows (render one book; the nightly batch) and the `audiobook` command line."""
