"""The leakage protocol of Yaman et al. 2025 (SPEC §1): plan, generate, score, report."""
