"""Steering: specs (plain data), the one-hook-per-module steering math, and streamed batched generation."""
