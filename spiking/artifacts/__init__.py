"""Saved files: networks (checkpoints), results.json, and local or s3:// storage."""
