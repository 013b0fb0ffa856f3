"""4. The disk: atomic writes of the rendered tree, what endpointgen owns, and the render cache."""
