"""The LandFuse Processing provider: one algorithm per file."""
