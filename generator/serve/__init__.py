"""Side entrance: a version's scoring pod run locally under the real Azure ML inference server."""
