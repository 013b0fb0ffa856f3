"""2. Specs into objects, in memory: template views, the Jinja templates, each environment's objects and files."""
