"""endpointgen: GitOps manifests for AksEndpoint-style ML scoring endpoints on AKS."""

__version__ = "0.1.0"
