"""Plan stage: findings -> generation plan (files and registry edits, as data) and what it must achieve."""
