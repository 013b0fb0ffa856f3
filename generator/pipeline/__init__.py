"""The whole-repository runs: render, check and validate every endpoint in one parallel sweep, or just what changed."""
