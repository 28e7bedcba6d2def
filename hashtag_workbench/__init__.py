"""Hashtag workbench: predict hashtags for photos, with and without training data."""
