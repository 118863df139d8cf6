"""Modal screens: help and feature detail."""
