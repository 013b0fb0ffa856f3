"""3. Rendered objects checked as a cluster would: JSON Schemas (vendored CRDs), API-server rules, policies."""
