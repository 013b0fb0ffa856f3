"""Side entrance: commands that edit specs as AksEndpoint's methods did, and SDK v1 import and serialize."""
