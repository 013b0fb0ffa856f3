"""Side entrance: the pull-request view, rules that need the base branch (check --base) and diff."""
