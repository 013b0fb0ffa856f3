"""The data-plane harness and its tests (README.md)."""
