"""1. The endpoint specs: YAML loaded with positions, JSON Schema and semantic rules,
AksEndpoint defaults and traffic, and the loaded model the other steps read.
"""
