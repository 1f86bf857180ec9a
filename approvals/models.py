"""Access requests, reviews and time-bound grants."""
